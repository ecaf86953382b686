"""Command line entry point: ``python -m sbr_side_info experiment=<exp>`` or ``sbr_side_info-run experiment=<exp>``."""

import sys

from paperlab.config import hydra_entry, setup_logging
from paperlab.data import DataUnavailableError
from sbr_side_info.experiment import run
from sbr_side_info.schema import DataFormatError


def _run(cfg) -> None:
    setup_logging()
    try:
        run(cfg)
    except (DataFormatError, DataUnavailableError, FileNotFoundError) as err:
        print(f"sbr_side_info: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(2)


main = hydra_entry("sbr_side_info", _run)
