from paperowl.cli import main

main()
