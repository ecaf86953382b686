"""The eval experiment end to end on fixtures (tiny model, random, oracle), configs and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from paperlab.config import ConfigError, compose, from_config
from roleinteract.experiment import EvalConfig, evaluate, resolve_data
from roleinteract.harness import CacheMissError
from roleinteract.report import PUBLISHED, TABLE_COLUMNS


@pytest.mark.parametrize("experiment", ["eval", "fixtures", "eval_paper"])
def test_shipped_configs_compose(experiment: str) -> None:
    cfg = from_config(EvalConfig, compose("roleinteract", [f"experiment={experiment}"]))
    assert cfg.models[-2:] == ["random", "oracle"]
    assert all(name in PUBLISHED for name in cfg.paper_rows)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"models": ["gpt4"]}, "models"),
        ({"models": ["hf:"]}, "models"),
        ({"models": []}, "models"),
        ({"paper_rows": ["GPT-5"]}, "paper_rows"),
        ({"data": [], "fixtures": False}, "data"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_config_names_the_field(override, field) -> None:
    with pytest.raises(ConfigError, match=field):
        EvalConfig(**override)


def test_fixture_run_writes_the_report_and_rescoring_reproduces_it(tmp_path: Path) -> None:
    cfg = EvalConfig(
        name="t",
        data=[],
        fixtures=True,
        models=["tiny", "random:1", "oracle"],
        progress=False,
        paper_rows=["GPT-4-Turbo"],
    )
    cfg.generation.max_new_tokens = 4
    cfg.generation.max_new_tokens_open = 4
    metrics = evaluate(cfg, out_dir=tmp_path)
    assert set(metrics["models"]) == {"hf:tiny-seed0", "random-seed1", "oracle"}
    oracle = metrics["models"]["oracle"]["columns"]
    assert [k for k, v in oracle.items() if v is not None] == [
        "SA Style",
        "SA Know",
        "CM Short",
        "CM Long",
        "SP Pos.",
        "SP Neu.",
        "SP Neg.",
    ]
    assert all(v in (None, 100.0) for v in oracle.values())
    assert metrics["drift"]["oracle"]["Group-SAP-Negative"]["drift"] == 0.0
    for name in ("results.md", "results.csv", "categories.csv", "scores.png", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(TABLE_COLUMNS)
    assert [r["model"] for r in rows][-1] == "GPT-4-Turbo (paper)"
    assert float(rows[-1]["Avg"]) == PUBLISHED["GPT-4-Turbo"][-1]
    md = (tmp_path / "results.md").read_text()
    assert "arXiv 2403.13679" in md and "preference drift" in md

    again = EvalConfig(
        name="t",
        data=[],
        fixtures=True,
        models=["tiny", "random:1", "oracle"],
        rescore_only=True,
        progress=False,
    )
    with pytest.raises(CacheMissError):  # other generation settings: the cached tiny answers do not apply
        evaluate(again, out_dir=tmp_path)
    again.generation = cfg.generation  # the settings the answers were made with
    rescored = evaluate(again, out_dir=tmp_path)
    assert rescored["models"] == metrics["models"]
    with pytest.raises(CacheMissError):
        evaluate(
            EvalConfig(name="t", data=[], fixtures=True, models=["random:9"], rescore_only=True),
            out_dir=tmp_path,
        )
    assert json.loads((tmp_path / "metrics.json").read_text())["n_items"] == 11


def test_missing_data_falls_back_to_fixtures_or_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path / "nowhere"))
    paths, source = resolve_data(EvalConfig())
    assert [p.name for p in paths] == [
        "conversation_memory.json",
        "self_awareness.json",
        "social_preference.json",
    ]
    assert "fixtures" in source
    with pytest.raises(FileNotFoundError, match="PAPERLAB_DATA"):
        resolve_data(EvalConfig(fallback_to_fixtures=False))


def test_eval_on_the_real_ep_file_oracle_100_random_near_chance(real_data, tmp_path: Path) -> None:
    path = real_data("socialbench", "emotional_perception.json")
    metrics = evaluate(
        EvalConfig(name="r", data=[str(path)], models=["random", "oracle"], progress=False), out_dir=tmp_path
    )
    oracle = metrics["models"]["oracle"]["columns"]
    assert oracle["EP Situ."] == oracle["EP Emo."] == 100.0
    random_cols = metrics["models"]["random-seed0"]["columns"]
    for column in ("EP Situ.", "EP Emo."):
        assert abs(random_cols[column] - metrics["chance"][column]) < 6.0
    assert metrics["n_items"] == 969
