from profuser.cli import main

main()
