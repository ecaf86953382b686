"""Command line entry point: `python -m irl_sft experiment=<exp>` or `irl_sft-run experiment=<exp>`."""

import sys


def main() -> None:
    print("irl_sft: not yet implemented (see packages/irl_sft/README.md)", file=sys.stderr)
    sys.exit(0)
