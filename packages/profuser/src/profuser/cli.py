"""Command line entry point: ``python -m profuser experiment=<exp>`` or ``profuser-run experiment=<exp>``."""

from paperlab.config import from_config, hydra_entry, setup_logging
from profuser.experiment import ExperimentConfig, run


def _run(cfg) -> None:
    setup_logging()
    run(from_config(ExperimentConfig, cfg))


main = hydra_entry("profuser", _run)
