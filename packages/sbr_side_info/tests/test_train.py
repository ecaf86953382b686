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


def test_resume_inside_an_epoch_equals_uninterrupted(small_synthetic, tmp_path: Path, monkeypatch) -> None:
    """A run stopped right after a mid-epoch checkpoint (every 16 of 42 steps) resumes at that step: same losses, same
    weights, same test metrics as one uninterrupted run."""
    from sbr_side_info import train as train_module

    base = dict(dim=16, lr=0.01, batch_size=32, progress=False, eval_test_every_epoch=False, epochs=2)
    one = train_model("NARM", small_synthetic, TrainConfig(**base))
    ckpt = tmp_path / "narm.pt"
    real, saved = train_module.save_checkpoint, []

    def save_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        saved.append(kwargs["extra"].get("partial"))
        if len(saved) == 4:  # epoch 1: steps 16, 32, then the epoch; epoch 2: step 16 -> stop
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_stop)
    cfg = TrainConfig(checkpoint=str(ckpt), checkpoint_every=16, **base)
    with pytest.raises(KeyboardInterrupt):
        train_model("NARM", small_synthetic, cfg)
    assert saved[-1] is not None and (saved[-1]["epoch"], saved[-1]["step"]) == (1, 16)
    monkeypatch.undo()
    resumed = train_model("NARM", small_synthetic, cfg)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in one["history"]]
    assert resumed["test"] == one["test"]
    for a, b in zip(one["model"].state_dict().values(), resumed["model"].state_dict().values(), strict=True):
        assert torch.equal(a, b)
