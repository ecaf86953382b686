"""The training loop: interrupt-and-resume equals one uninterrupted run; early stopping; config validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.config import ConfigError
from sbr_side_info.train import TrainConfig, train_model


def test_resume_equals_uninterrupted(small_synthetic, tmp_path: Path) -> None:
    base = dict(
        dim=16,
        lr=0.01,
        batch_size=64,
        progress=False,
        eval_test_every_epoch=False,
        lr_decay_every=1,
        lr_decay=0.5,
    )
    one = train_model("NARM", small_synthetic, TrainConfig(epochs=3, **base))
    ckpt = tmp_path / "narm.pt"
    train_model("NARM", small_synthetic, TrainConfig(epochs=2, checkpoint=str(ckpt), **base))  # "killed" here
    resumed = train_model("NARM", small_synthetic, TrainConfig(epochs=3, checkpoint=str(ckpt), **base))
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in one["history"]], abs=1e-6
    )
    assert resumed["test"] == pytest.approx(one["test"], abs=1e-9)
    for a, b in zip(one["model"].state_dict().values(), resumed["model"].state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_early_stopping_stops_after_patience(small_synthetic) -> None:
    # lr so small nothing improves after the first epoch -> stop after 1 + patience epochs
    cfg = TrainConfig(dim=8, epochs=20, lr=1e-9, patience=2, progress=False, eval_test_every_epoch=False)
    result = train_model("STAMP", small_synthetic, cfg)
    assert len(result["history"]) <= 1 + 2 + 1


@pytest.mark.parametrize(
    ("field", "value"), [("epochs", 0), ("lr", -1.0), ("lr_decay", 0.0), ("ks", [5, 10]), ("patience", 0)]
)
def test_bad_train_config_names_the_field(field, value) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})
