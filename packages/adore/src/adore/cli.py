"""Command line entry point: `python -m adore experiment=<exp>` or `adore-run experiment=<exp>`."""

import sys


def main() -> None:
    print("adore: not yet implemented (see packages/adore/README.md)", file=sys.stderr)
    sys.exit(0)
