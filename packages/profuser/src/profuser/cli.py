"""Command line entry point: `python -m profuser experiment=<exp>` or `profuser-run experiment=<exp>`."""

import sys


def main() -> None:
    print("profuser: not yet implemented (see packages/profuser/README.md)", file=sys.stderr)
    sys.exit(0)
