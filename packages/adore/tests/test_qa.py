"""LongBench-style QA: the loader reads LongBench JSONL (middle truncation, errors naming file/line/field) and the
paper_longbench path runs offline on a saved tiny checkpoint; F1 is LongBench's qa_f1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adore.experiment import run
from adore.qa import load_longbench
from paperlab.config import ConfigError, compose
from paperlab.models import save_tiny_checkpoint, train_tiny_tokenizer

TEXTS = ["the cat sat on the mat near the door", "paris is the capital of france", "answer the question"]


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_loader_truncates_the_middle_and_names_bad_fields(tmp_path: Path) -> None:
    tok = train_tiny_tokenizer(TEXTS, vocab_size=300)
    context = " ".join(f"w{i}" for i in range(400))
    f = _write(
        tmp_path / "qasper.jsonl", [{"context": context, "input": "who?", "answers": ["a"], "_id": "x"}]
    )
    (ex,) = load_longbench(f, tok, template="{context} Q: {input} A:", max_context=64)
    assert ex.context_ids.numel() + ex.question_ids.numel() == 64
    full = tok(context, add_special_tokens=True)["input_ids"]
    assert ex.context_ids[:10].tolist() == full[:10]  # the beginning survives
    assert ex.answers == ["a"] and ex.uid == "x"
    bad = _write(tmp_path / "bad.jsonl", [{"context": "c", "input": "q", "answers": ["a"]}, {"context": "c"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: field 'input'"):
        load_longbench(bad, tok)
    with pytest.raises(ValueError, match=r"bad2\.jsonl:1: not valid JSON"):
        load_longbench(_write(tmp_path / "bad2.jsonl", ["{oops"]), tok)
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_longbench(tmp_path / "missing.jsonl", tok)


def test_paper_longbench_path_runs_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt", texts=TEXTS, vocab_size=300, layers=1, hidden=32)
    rows = [{"context": " ".join(TEXTS * 4), "input": "what is the capital?", "answers": ["paris"]}] * 6
    data = _write(tmp_path / "hotpotqa.jsonl", rows)
    out = run(
        compose(
            "adore",
            [
                "experiment=paper_longbench",
                f"qa.model={ckpt}",
                f"qa.data=[{data}]",
                "qa.device=cpu",
                "qa.dtype=float32",
                "qa.max_new_tokens=4",
                "qa.budgets=[0.5]",
                "qa.rebuild=2",
                "qa.policies=[full,streaming_llm,adore+rebuild]",
                "qa.progress=false",
                "controller.dim=16",
                "controller.top_k=4",
                "controller.epochs=1",
            ],
        )
    )
    assert out["metric"] == "F1" and [r["policy"] for r in out["rows"]] == [
        "full",
        "streaming_llm",
        "adore+rebuild",
    ]
    assert all(0 <= r["F1"] <= 100 and r["data"] == "hotpotqa" for r in out["rows"])
    assert all(r["examples"] == 5 for r in out["rows"])  # one of the six held out for the controller
    with pytest.raises(ConfigError, match="data"):
        run(compose("adore", ["experiment=paper_longbench", f"qa.model={ckpt}"]))
