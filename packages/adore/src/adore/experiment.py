"""``python -m adore experiment=<exp>``: dispatch on the config's ``kind`` to the recall (:mod:`adore.recall`), LM
(:mod:`adore.lm`) or QA (:mod:`adore.qa`) experiment. Only this module knows all three."""

from __future__ import annotations

from typing import Any

from adore.lm import LMExperimentConfig, run_lm
from adore.qa import QAExperimentConfig, run_qa
from adore.recall import RecallExperimentConfig, run_recall
from paperlab.config import ConfigError, _plain, from_config, require

KINDS = ("recall", "lm", "qa")


def _build(cls: type, block: Any, where: str | None = None) -> Any:
    try:
        return from_config(cls, block or {}, where=where or "")
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err


def run(cfg_in: Any) -> dict[str, Any]:
    """``recall``: the config's top level; ``lm``: the ``lm`` block (experiment=lm / paper); ``qa``: the ``qa`` block
    plus the top level's recall settings and controller (experiment=qa / paper_longbench)."""
    data = dict(_plain(cfg_in))
    kind = data.get("kind", "recall")
    lm_block = data.pop("lm", None)
    qa_block = data.pop("qa", None)
    require(kind in KINDS, "kind", kind, "'recall', 'lm' or 'qa'")
    if kind == "lm":
        return run_lm(_build(LMExperimentConfig, lm_block, "lm"))
    cfg = _build(RecallExperimentConfig, data)
    if kind == "qa":
        return run_qa(_build(QAExperimentConfig, qa_block, "qa"), cfg, cfg.controller)
    return run_recall(cfg)
