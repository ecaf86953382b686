from roleinteract.cli import main

main()
