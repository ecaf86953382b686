"""The recall experiment end to end on tiny settings: every policy and budget gets a row, files are written, the
LM checkpoint is reused on a second run."""

from __future__ import annotations

import json
from pathlib import Path

from adore.recall import RecallExperimentConfig, run_recall
from adore.registry import POLICY_NAMES
from paperlab.config import compose, from_config


def _recall_cfg(tmp_path: Path, monkeypatch, *overrides: str) -> RecallExperimentConfig:
    """experiment=recall at a 25% budget with ``overrides``; results and caches under ``tmp_path``."""
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / "cache"))
    args = ["experiment=recall", "budgets=[0.25]", "progress=false", *overrides]
    return from_config(RecallExperimentConfig, compose("adore", args))


def test_recall_experiment_end_to_end(tmp_path: Path, monkeypatch) -> None:
    cfg = _recall_cfg(
        tmp_path,
        monkeypatch,
        "lm_steps=20",
        "eval_sequences=2",
        "controller.sequences=2",
        "controller.epochs=1",
        "finetune.steps=2",
        "finetune.sequences=4",
        "finetune.batch_size=2",
    )
    metrics = run_recall(cfg)
    rows = metrics["rows"]
    assert [r["policy"] for r in rows] == [*POLICY_NAMES, "adore+rebuild+ft"]
    budget = round(0.25 * cfg.task.length)
    for r in rows:
        assert 0 <= r["answer accuracy %"] <= 100
        if r["policy"] != "full":
            assert r["max cache after a step"] <= budget, r
    out = tmp_path / "results" / "adore" / "recall"
    assert json.loads((out / "metrics.json").read_text())["sequence_length"] == cfg.task.length
    assert (out / "accuracy_vs_budget.png").stat().st_size > 0
    assert len(list((tmp_path / "cache" / "adore").glob("recall-lm-*.pt"))) == 1
    assert len(list((tmp_path / "cache" / "adore").glob("recall-ft-*.pt"))) == 1


def test_adore_with_rebuild_beats_every_baseline_at_25_percent(tmp_path: Path, monkeypatch) -> None:
    """The issue's claim on the recall language: the LM solves recall with the full cache (flat by query order, so
    by lookup, not elimination); at a 25% budget ADORE with rebuild beats StreamingLLM, H2O, SnapKV and TOVA by 30+
    points on held-out sequences (issue 30's acceptance), and rebuilding helps over release alone."""
    cfg = _recall_cfg(
        tmp_path,
        monkeypatch,
        "eval_sequences=40",
        "controller.sequences=64",
        "policies=[full,streaming_llm,h2o,snapkv,tova,adore,adore+rebuild]",
        "finetune.steps=300",
        "finetune.sequences=256",
    )
    metrics = run_recall(cfg)
    acc = {r["policy"]: r["answer accuracy %"] for r in metrics["rows"]}
    assert acc["full"] > 95, acc
    assert min(metrics["full_cache_accuracy_by_query"]) > 90, metrics["full_cache_accuracy_by_query"]
    for baseline in ("streaming_llm", "h2o", "snapkv", "tova"):
        assert acc["adore+rebuild"] > acc[baseline] + 30, (baseline, acc)
    assert acc["adore+rebuild"] > acc["adore"] + 5, acc
    # the paper's ADORE, the LM fine-tuned under the controller's cache: within 3 points of full attention (issue
    # 30's acceptance; measured here 98.75 vs 100, the frozen LM 98.33)
    assert acc["adore+rebuild+ft"] >= acc["full"] - 3 and acc["adore+rebuild+ft"] >= acc["adore+rebuild"], acc

    # the same LM (loaded from the cache) through model.generate + AdoreCache, context compressed BEFORE the
    # question is seen (question-agnostic, kvpress's LongBench protocol)
    from adore.experiment import run

    qa = run(
        compose(
            "adore",
            [
                "experiment=qa",
                "qa.examples=60",
                "qa.budgets=[0.25]",
                "qa.policies=[full,streaming_llm,adore,adore+rebuild]",
                "qa.progress=false",
                "controller.sequences=64",
            ],
        )
    )
    em = {r["policy"]: r["exact match"] for r in qa["rows"]}
    assert em["full"] > 95, em
    assert em["adore+rebuild"] > em["streaming_llm"] + 30, em
    assert em["adore+rebuild"] > em["adore"], em
    assert len(list((tmp_path / "cache" / "adore").glob("recall-lm-*.pt"))) == 1  # reused, not retrained
