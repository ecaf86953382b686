"""Command line entry point: `python -m paperowl experiment=<exp>` or `paperowl-run experiment=<exp>`."""

import sys


def main() -> None:
    print("paperowl: not yet implemented (see packages/paperowl/README.md)", file=sys.stderr)
    sys.exit(0)
