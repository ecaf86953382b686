"""Command line entry point: ``python -m roleinteract experiment=<exp>`` or ``roleinteract-run experiment=<exp>``."""

import sys

from paperlab.config import hydra_entry, setup_logging
from paperlab.data import DataUnavailableError
from roleinteract.backends import EndpointError
from roleinteract.data import DataFormatError
from roleinteract.experiment import run
from roleinteract.harness import CacheMissError


def _run(cfg) -> None:
    setup_logging()
    try:
        run(cfg)
    except (DataFormatError, DataUnavailableError, CacheMissError, EndpointError) as err:
        print(f"roleinteract: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(2)


main = hydra_entry("roleinteract", _run)
