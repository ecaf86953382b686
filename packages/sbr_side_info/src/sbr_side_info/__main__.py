from sbr_side_info.cli import main

main()
