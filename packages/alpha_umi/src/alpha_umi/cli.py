"""Command line entry point: ``python -m alpha_umi experiment=<exp>`` or ``alpha_umi-run experiment=<exp>``."""

from alpha_umi.experiment import ExperimentConfig, run
from paperlab.config import from_config, hydra_entry, setup_logging


def _run(cfg) -> None:
    setup_logging()
    run(from_config(ExperimentConfig, cfg))


main = hydra_entry("alpha_umi", _run)
