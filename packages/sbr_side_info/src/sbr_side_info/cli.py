"""Command line entry point: `python -m sbr_side_info experiment=<exp>` or `sbr_side_info-run experiment=<exp>`."""

import sys


def main() -> None:
    print("sbr_side_info: not yet implemented (see packages/sbr_side_info/README.md)", file=sys.stderr)
    sys.exit(0)
