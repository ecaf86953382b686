from unify.cli import main

main()
