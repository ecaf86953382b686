from aihf.cli import main

main()
