"""Command line entry point: `python -m aihf experiment=<exp>` or `aihf-run experiment=<exp>`."""

import sys


def main() -> None:
    print("aihf: not yet implemented (see packages/aihf/README.md)", file=sys.stderr)
    sys.exit(0)
