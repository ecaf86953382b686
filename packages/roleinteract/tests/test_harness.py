"""Cache, resume and re-scoring; group-level drift."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from roleinteract.backends import OracleBackend, RandomBackend
from roleinteract.data import fixture_paths, load_benchmark
from roleinteract.harness import (
    CacheMissError,
    ask_all,
    cached_models,
    preference_drift,
    replies_from_cache,
    score_replies,
)
from roleinteract.scoring import ScoreConfig, aggregate


class Killed(RuntimeError):
    pass


class CountingBackend(RandomBackend):
    """A random backend that records what it was asked and can die after ``kill_after`` answers."""

    def __init__(self, seed: int = 0, kill_after: int | None = None) -> None:
        super().__init__(seed)
        self.kill_after = kill_after
        self.asked: list[str] = []

    def iter_answers(self, queries):
        for i, reply in super().iter_answers(queries):
            if self.kill_after is not None and len(self.asked) >= self.kill_after:
                raise Killed("simulated crash")
            self.asked.append(queries[i].item.item_id)
            yield i, reply


def test_interrupted_run_resumes_without_asking_twice(synthetic, tmp_path: Path) -> None:
    items = synthetic[:500]
    cache = tmp_path / "answers.jsonl"
    first = CountingBackend(kill_after=137)
    with pytest.raises(Killed):
        ask_all(first, items, cache, progress=False)
    assert len(cache.read_text().splitlines()) == 137  # every answer received was stored at once

    second = CountingBackend()
    replies = ask_all(second, items, cache, progress=False)
    asked = Counter(first.asked + second.asked)
    assert len(asked) == len(items) and max(asked.values()) == 1  # each question asked exactly once

    uninterrupted = ask_all(CountingBackend(), items, tmp_path / "clean.jsonl", progress=False)
    assert replies == uninterrupted
    cfg = ScoreConfig()
    resumed = aggregate(items, score_replies(items, replies), cfg)
    clean = aggregate(items, score_replies(items, uninterrupted), cfg)
    assert resumed["columns"] == clean["columns"]

    third = CountingBackend()
    ask_all(third, items, cache, progress=False)
    assert third.asked == []  # a complete cache asks nothing


def test_rescoring_needs_no_model(synthetic, tmp_path: Path) -> None:
    items = synthetic[:200]
    cache = tmp_path / "answers.jsonl"
    asked = ask_all(RandomBackend(3), items, cache, progress=False)
    assert replies_from_cache(cache, "random-seed3", items) == asked
    assert cached_models(cache) == ["random-seed3"]
    with pytest.raises(CacheMissError, match="random-seed3"):
        replies_from_cache(cache, "random-seed4", items)


def test_a_changed_prompt_is_asked_again(tmp_path: Path, synthetic) -> None:
    items = synthetic[:5]
    cache = tmp_path / "answers.jsonl"
    ask_all(OracleBackend(), items, cache, progress=False)
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert {r["item_id"] for r in records} == {it.item_id for it in items}
    changed = [replace(items[0], choices={**items[0].choices, "A": "new text"})]
    backend = CountingBackend()
    ask_all(backend, changed, cache, progress=False)
    assert backend.asked == [items[0].item_id]


class SwayedBackend:
    """Gives the gold answer when it sees the group conversation, and "D" when it sees only the last turn."""

    name = "swayed"

    def iter_answers(self, queries):
        for i, q in enumerate(queries):
            yield i, (", ".join(q.item.label) if len(q.item.dialogue) > 1 else "D")


def test_oracle_has_no_drift_and_a_group_swayed_backend_does(tmp_path: Path) -> None:
    items = load_benchmark(fixture_paths())
    oracle = preference_drift(OracleBackend(), items, tmp_path / "a.jsonl", progress=False)
    assert set(oracle) == {"Group-SAP-Positive", "Group-SAP-Neutral", "Group-SAP-Negative"}
    for row in oracle.values():
        assert (row["with_group"], row["without_group"], row["drift"], row["flip_rate"]) == (100, 100, 0, 0)

    swayed = preference_drift(SwayedBackend(), items, tmp_path / "b.jsonl", progress=False)
    # fixtures: positive = one 3-turn item (gold A) + one 1-turn item (gold A, B); neutral, negative: 3 turns
    assert swayed["Group-SAP-Positive"] == {
        "n": 2,
        "with_group": 50.0,
        "without_group": 0.0,
        "drift": 50.0,
        "flip_rate": 50.0,
    }
    for category in ("Group-SAP-Neutral", "Group-SAP-Negative"):
        assert swayed[category]["drift"] == 100.0 and swayed[category]["flip_rate"] == 100.0


def test_no_group_items_no_drift(synthetic, tmp_path: Path) -> None:
    individual = [it for it in synthetic if not it.category.startswith("Group")][:20]
    assert preference_drift(OracleBackend(), individual, tmp_path / "c.jsonl", progress=False) == {}
