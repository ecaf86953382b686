"""``adore-lm``: the corpus is real text built offline, the experiment runs end to end on tiny settings, a budget
covering the window gives exactly the full cache's perplexity, and bad settings name their field."""

from __future__ import annotations

from pathlib import Path

import pytest

from adore.experiment import run
from adore.lm import LMExperimentConfig, docs_corpus
from paperlab.config import ConfigError, compose


def test_docs_corpus_is_english_text_split_by_name() -> None:
    train, held, digest = docs_corpus()
    assert len(train) >= 4 and len(held) >= 1 and len(digest) == 12
    text = " ".join(train)
    assert len(text) > 100_000 and text.count(" the ") > 500  # prose, not just code
    assert not set(train) & set(held)


def test_lm_experiment_end_to_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / "cache"))
    cfg = compose(
        "adore",
        [
            "experiment=lm",
            "lm.vocab_size=300",
            "lm.window=32",
            "lm.layers=1",
            "lm.hidden=32",
            "lm.steps=5",
            "lm.batch=2",
            "lm.prefill=8",
            "lm.eval_windows=2",
            "lm.controller.sequences=2",
            "lm.controller.epochs=1",
            "lm.budgets=[0.5,1.0]",
            "lm.policies=[full,streaming_llm,adore+rebuild]",
            "lm.progress=false",
        ],
    )
    metrics = run(cfg)
    rows = {(r["fraction"], r["policy"]): r["perplexity"] for r in metrics["rows"]}
    assert len(rows) == 6
    for policy in ("streaming_llm", "adore+rebuild"):
        assert rows[(1.0, policy)] == pytest.approx(rows[(1.0, "full")], rel=1e-4)  # nothing released
    assert all(1 < p < 300 * 10 for p in rows.values())
    assert (tmp_path / "results" / "adore" / "lm" / "perplexity_vs_budget.png").stat().st_size > 0
    assert len(list((tmp_path / "cache" / "adore").glob("text-lm-*/lm.pt"))) == 1


def test_bad_lm_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="prefill"):
        LMExperimentConfig(window=32, prefill=32)
    with pytest.raises(ConfigError, match="lm"):
        run(compose("adore", ["experiment=lm", "+lm.nonsense=1"]))
    with pytest.raises(ConfigError, match="kind"):
        run(compose("adore", ["kind=other"]))
