"""Command line entry point: ``python -m roleinteract experiment=<exp>`` or ``roleinteract-run experiment=<exp>``.

paperlab's :func:`~paperlab.config.hydra_entry` keeps the error contract: a config or data error (a
:class:`~paperlab.config.UserError`: bad file, missing answer in the cache, bad setting) is one line
``roleinteract: error: ...`` and exit 2; SIGINT / SIGTERM exit 130 / 143 and the rerun resumes from the cache.
"""

from paperlab.config import hydra_entry, setup_logging
from roleinteract.experiment import run


def _run(cfg) -> None:
    setup_logging()
    run(cfg)


main = hydra_entry("roleinteract", _run)
