"""Command line entry point: `python -m unify experiment=<exp>` or `unify-run experiment=<exp>`."""

import sys


def main() -> None:
    print("unify: not yet implemented (see packages/unify/README.md)", file=sys.stderr)
    sys.exit(0)
