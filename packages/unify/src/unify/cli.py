"""Command line entry point: ``python -m unify experiment=<exp>`` or ``unify-run experiment=<exp>``."""

from paperlab.config import hydra_entry, setup_logging
from unify.experiment import run


def _run(cfg) -> None:
    setup_logging()
    run(cfg)


main = hydra_entry("unify", _run)
