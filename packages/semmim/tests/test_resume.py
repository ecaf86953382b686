"""Interruption (issue 28): fine-tuning stopped mid-run and rerun resumes from its checkpoint and ends with the
uninterrupted run's metrics (pretraining's own resume is tested in test_train.py); the pretraining command line
killed with SIGTERM at random points and rerun gives the uninterrupted run's results."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from paperlab.config import compose, from_config
from paperlab.testing import kill_and_resume

SMALL = [
    "model.vision_width=32",
    "model.vision_depth=1",
    "model.vision_heads=2",
    "model.text_width=32",
    "model.text_depth=1",
    "model.text_heads=2",
    "model.fusion_depth=1",
    "model.fusion_heads=2",
    "model.embed_dim=16",
    "model.prototypes=8",
    "model.head_hidden=32",
    "model.head_bottleneck=16",
]


@pytest.mark.slow
def test_finetuning_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch) -> None:
    import semmim.finetune_tasks as T
    from semmim.finetune import FinetuneConfig, run

    overrides = [
        "task=vqa_tiny",
        "init=scratch",
        "train.steps=8",
        "train.warmup=2",
        "train.log_every=2",
        "train.checkpoint_every=2",
        "data.train_images=64",
        "data.test_images=16",
        "progress=false",
        *SMALL,
    ]
    cfg = from_config(FinetuneConfig, compose("semmim", overrides, config_name="finetune"))
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "whole"))
    whole = run(cfg)

    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "parts"))
    fit = T.fit
    monkeypatch.setattr(T, "fit", lambda *a, **kw: fit(*a, **kw, stop_at=5))  # stopped after step 5
    run(cfg)
    (checkpoint,) = (tmp_path / "parts" / "semmim" / "finetune_vqa_tiny").glob("checkpoint-*.pt")
    assert torch.load(checkpoint, weights_only=False)["step"] == 4  # the last checkpoint before the stop
    monkeypatch.setattr(T, "fit", fit)
    torch.manual_seed(123)  # a fresh process: another RNG state until the checkpoint restores it
    parts = run(cfg)
    assert parts["history"] == whole["history"]
    assert parts["fine-tuned"] == whole["fine-tuned"]


@pytest.mark.slow
def test_cli_killed_and_rerun_gives_the_uninterrupted_results(tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "semmim",
        "experiment=tiny",
        "methods=[base]",
        "train.steps=20",
        "train.warmup=2",
        "train.log_every=4",
        "train.checkpoint_every=4",
        "data.train_images=64",
        "data.test_images=16",
        "rerank_k=4",
        "progress=false",
        *SMALL,
    ]

    def outputs(cwd):
        metrics = json.loads((cwd / "results" / "semmim" / "tiny" / "metrics.json").read_text())
        return [metrics["summary"], metrics["runs"]]

    result = kill_and_resume(
        args, workdir=tmp_path, outputs=outputs, kills=2, seed=1, env={"PAPERLAB_RESULTS": "results"}
    )
    assert result.landed >= 1
