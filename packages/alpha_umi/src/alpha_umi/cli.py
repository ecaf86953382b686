"""Command line entry point: `python -m alpha_umi experiment=<exp>` or `alpha_umi-run experiment=<exp>`."""

import sys


def main() -> None:
    print("alpha_umi: not yet implemented (see packages/alpha_umi/README.md)", file=sys.stderr)
    sys.exit(0)
