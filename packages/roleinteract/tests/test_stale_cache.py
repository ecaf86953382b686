"""The answer cache is keyed by what the answers were derived from (model, answer-changing settings, prompt):
a changed generation budget or tokenizer corpus is never served the old answers (issue 28 item 1)."""

from __future__ import annotations

from pathlib import Path

from paperlab.io import read_jsonl
from roleinteract.experiment import EvalConfig, evaluate
from roleinteract.synthetic import raw_item, write_items


def _cfg(tmp_path: Path, data: Path, **generation) -> EvalConfig:
    cfg = EvalConfig(
        name="stale", data=[str(data)], models=["tiny"], progress=False, drift=False,
        fallback_to_fixtures=False, cache=str(tmp_path / "answers.jsonl"), paper_rows=[],
    )  # fmt: skip
    cfg.generation.max_new_tokens = generation.get("max_new_tokens", 2)
    cfg.generation.batch_size = 4
    return cfg


def test_a_changed_setting_or_item_set_is_not_served_stale_answers(tmp_path: Path) -> None:
    data = write_items(tmp_path / "sa.json", [raw_item(label=[x]) for x in "ABCA"])
    evaluate(_cfg(tmp_path, data, max_new_tokens=2), out_dir=tmp_path / "a")
    first = read_jsonl(tmp_path / "answers.jsonl")
    assert len(first) == 4
    evaluate(_cfg(tmp_path, data, max_new_tokens=2), out_dir=tmp_path / "a")  # same settings: all cached
    assert len(read_jsonl(tmp_path / "answers.jsonl")) == 4
    evaluate(_cfg(tmp_path, data, max_new_tokens=6), out_dir=tmp_path / "b")  # another budget: asked again
    rows = read_jsonl(tmp_path / "answers.jsonl")
    assert len(rows) == 8
    assert len({r["settings"] for r in rows}) == 2
    longer = [r["reply"] for r in rows[4:]]
    assert any(len(b) > len(a) for a, b in zip([r["reply"] for r in first], longer, strict=True))
    # the tiny model's tokenizer is trained on the prompts evaluated: another item set, other answers
    more = write_items(tmp_path / "sa.json", [raw_item(label=[x]) for x in "ABCAB"])
    evaluate(_cfg(tmp_path, more, max_new_tokens=2), out_dir=tmp_path / "c")
    assert len(read_jsonl(tmp_path / "answers.jsonl")) == 8 + 5
