from adore.cli import main

main()
