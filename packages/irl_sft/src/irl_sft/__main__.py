from irl_sft.cli import main

main()
