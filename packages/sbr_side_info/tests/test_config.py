"""Every shipped config composes and validates (the paper-scale one too, without any download)."""

from __future__ import annotations

import pytest

from paperlab.config import ConfigError, compose, from_config
from sbr_side_info.experiment import DatasetSpec, ExperimentConfig


@pytest.mark.parametrize(
    "experiment", ["sample", "synthetic", "repro", "dataset", "repro_paper", "movielens_sparsity"]
)
def test_configs_compose(experiment: str) -> None:
    cfg = from_config(ExperimentConfig, compose("sbr_side_info", [f"experiment={experiment}"]))
    assert cfg.kind in ("sample", "synthetic", "repro", "dataset", "movielens_sparsity")
    if experiment == "repro_paper":
        assert [d.name for d in cfg.datasets] == ["diginetica", "yoochoose1_64", "tmall", "retailrocket"]
        assert cfg.datasets[1].protocol == {"test_days": 1.0, "train_fraction": 0.015625}
        assert cfg.train.dim == 100 and cfg.train.lr == 0.001 and cfg.train.patience == 10
        assert cfg.datasets[1].loader == "yoochoose"  # clicks make the sessions; buys give prices only


@pytest.mark.parametrize("experiment", ["repro", "repro_paper"])
def test_narm_and_gru4rec_run_with_their_own_papers_settings(experiment: str) -> None:
    cfg = from_config(ExperimentConfig, compose("sbr_side_info", [f"experiment={experiment}"]))
    narm, gru, srgnn = cfg.train_for("NARM"), cfg.train_for("GRU4Rec"), cfg.train_for("SR-GNN")
    # NARM Sec. 4.3 / official train_gru: embedding 50, hidden 100, batch 512, Adam 1e-3, no L2, no decay
    assert (narm.dim, narm.hidden, narm.batch_size, narm.lr, narm.l2, narm.lr_decay) == (
        50,
        100,
        512,
        1e-3,
        0.0,
        1.0,
    )
    # GRU4Rec 2018: BPR-max with 2048 shared negative samples
    assert (gru.loss, gru.n_sample, gru.sample_alpha, gru.bpreg) == ("bpr-max", 2048, 0.75, 1.0)
    assert (srgnn.dim, srgnn.batch_size, srgnn.loss, srgnn.l2) == (100, 100, "ce", 1e-5)


def test_model_train_overrides_are_validated() -> None:
    with pytest.raises(ConfigError, match="model_train"):
        ExperimentConfig(model_train={"NARM": {"hiden": 100}})
    with pytest.raises(ConfigError, match="loss"):
        ExperimentConfig(model_train={"GRU4Rec": {"loss": "top2"}}).train_for("GRU4Rec")


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
