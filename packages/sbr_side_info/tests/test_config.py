"""Every shipped config composes and validates (the paper-scale one too, without any download)."""

from __future__ import annotations

import pytest

from paperlab.config import ConfigError, compose, from_config
from sbr_side_info.experiment import DatasetSpec, ExperimentConfig


@pytest.mark.parametrize("experiment", ["sample", "synthetic", "repro", "dataset", "repro_paper"])
def test_configs_compose(experiment: str) -> None:
    cfg = from_config(ExperimentConfig, compose("sbr_side_info", [f"experiment={experiment}"]))
    assert cfg.kind in ("sample", "synthetic", "repro", "dataset")
    if experiment == "repro_paper":
        assert [d.name for d in cfg.datasets] == ["diginetica", "yoochoose1_64", "tmall", "retailrocket"]
        assert cfg.datasets[1].protocol == {"test_days": 1.0, "train_fraction": 0.015625}
        assert cfg.train.dim == 100 and cfg.train.lr == 0.001 and cfg.train.patience == 10


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="models"):
        ExperimentConfig(models=["SASRec"])
    with pytest.raises(ConfigError, match="kind"):
        ExperimentConfig(kind="train")
    with pytest.raises(ConfigError, match="loader"):
        DatasetSpec(loader="csv")
    with pytest.raises(ConfigError, match="protocol"):
        DatasetSpec(protocol={"test_dayz": 1})
    with pytest.raises(ConfigError, match="trian"):
        from_config(ExperimentConfig, compose("sbr_side_info", ["experiment=sample", "+trian.lr=1"]))
