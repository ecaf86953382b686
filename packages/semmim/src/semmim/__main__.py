from semmim.cli import main

main()
