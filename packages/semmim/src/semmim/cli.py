"""Command line entry point: ``python -m semmim experiment=<exp>`` or ``semmim-run experiment=<exp>``."""

from paperlab.config import from_config, hydra_entry, setup_logging
from semmim.experiment import ExperimentConfig, run


def _run(cfg) -> None:
    setup_logging()
    run(from_config(ExperimentConfig, cfg))


main = hydra_entry("semmim", _run)
