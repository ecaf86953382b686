"""The recall experiment end to end on tiny settings: every policy and budget gets a row, files are written, the
LM checkpoint is reused on a second run."""

from __future__ import annotations

import json
from pathlib import Path

from adore.experiment import POLICY_NAMES, RecallExperimentConfig, run_recall
from paperlab.config import compose, from_config


def test_recall_experiment_end_to_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / "cache"))
    cfg = from_config(
        RecallExperimentConfig,
        compose(
            "adore",
            [
                "experiment=recall",
                "lm_steps=20",
                "eval_sequences=2",
                "controller.sequences=2",
                "controller.epochs=1",
                "budgets=[0.25]",
                "progress=false",
            ],
        ),
    )
    metrics = run_recall(cfg)
    rows = metrics["rows"]
    assert [r["policy"] for r in rows] == list(POLICY_NAMES)
    budget = round(0.25 * cfg.task.length)
    for r in rows:
        assert 0 <= r["answer accuracy %"] <= 100
        if r["policy"] != "full":
            assert r["max cache after a step"] <= budget, r
    out = tmp_path / "results" / "adore" / "recall"
    assert json.loads((out / "metrics.json").read_text())["sequence_length"] == cfg.task.length
    assert (out / "accuracy_vs_budget.png").stat().st_size > 0
    assert len(list((tmp_path / "cache" / "adore").glob("recall-lm-*.pt"))) == 1
