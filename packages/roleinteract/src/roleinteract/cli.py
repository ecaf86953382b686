"""Command line entry point: `python -m roleinteract experiment=<exp>` or `roleinteract-run experiment=<exp>`."""

import sys


def main() -> None:
    print("roleinteract: not yet implemented (see packages/roleinteract/README.md)", file=sys.stderr)
    sys.exit(0)
