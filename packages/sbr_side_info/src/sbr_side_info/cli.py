"""Command line entry point: ``python -m sbr_side_info experiment=<exp>`` or ``sbr_side_info-run experiment=<exp>``.

Errors follow :func:`paperlab.config.hydra_entry`: a data or config error is one line ``sbr_side_info: error: ...``
and exit 2; SIGINT / SIGTERM exit 130 / 143 after the last checkpoint (a rerun resumes)."""

from paperlab.config import hydra_entry, setup_logging
from sbr_side_info.experiment import run


def _run(cfg) -> None:
    setup_logging()
    run(cfg)


main = hydra_entry("sbr_side_info", _run)
