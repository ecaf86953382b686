"""Command line entry point: ``python -m irl_sft experiment=<exp>`` or ``irl_sft-run experiment=<exp>``."""

from irl_sft.experiment import run
from paperlab.config import hydra_entry, setup_logging


def _run(cfg) -> None:
    setup_logging()
    run(cfg)


main = hydra_entry("irl_sft", _run)
