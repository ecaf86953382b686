"""Command line entry point: `python -m aihf experiment=<exp>` or `aihf-run experiment=<exp>`."""

import sys


def main() -> None:
    print(
        "aihf: no experiment yet (in progress: losses and the TRL trainer are built; see packages/aihf/README.md)",
        file=sys.stderr,
    )
    sys.exit(0)
