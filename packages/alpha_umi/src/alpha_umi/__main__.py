from alpha_umi.cli import main

main()
