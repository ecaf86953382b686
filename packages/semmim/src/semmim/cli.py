"""Command line entry point: `python -m semmim experiment=<exp>` or `semmim-run experiment=<exp>`."""

import sys


def main() -> None:
    print("semmim: not yet implemented (see packages/semmim/README.md)", file=sys.stderr)
    sys.exit(0)
