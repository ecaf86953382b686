"""Command line entry point: ``python -m adore experiment=<exp>`` or ``adore-run experiment=<exp>``."""

from adore.experiment import run
from paperlab.config import hydra_entry, setup_logging


def _run(cfg) -> None:
    setup_logging()
    run(cfg)


main = hydra_entry("adore", _run)
