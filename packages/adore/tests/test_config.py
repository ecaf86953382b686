"""The shipped config composes and validates."""

from __future__ import annotations

import pytest

from adore.recall import RecallExperimentConfig
from paperlab.config import ConfigError, compose, from_config


def test_recall_config_composes() -> None:
    cfg = from_config(RecallExperimentConfig, compose("adore", ["experiment=recall"]))
    assert cfg.budgets == [0.1, 0.25, 0.5] and "adore+rebuild" in cfg.policies
    assert cfg.task.length == 54 and cfg.task.with_replacement and cfg.rebuild_context == 1


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="budgets"):
        RecallExperimentConfig(budgets=[0.0])
    with pytest.raises(ConfigError, match="policies"):
        RecallExperimentConfig(policies=["pyramidkv"])
