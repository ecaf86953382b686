"""Official answer extraction and scoring; oracle = 100 and random = analytic chance on every column."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from roleinteract.backends import OracleBackend, Query, RandomBackend
from roleinteract.data import fixture_paths, load_benchmark, load_items
from roleinteract.prompts import build_prompt
from roleinteract.report import PUBLISHED
from roleinteract.scoring import (
    PAPER_COLUMNS,
    ScoreConfig,
    aggregate,
    column_of,
    expected_random_columns,
    expected_random_score,
    extract_options,
    score_reply,
)
from roleinteract.synthetic import raw_item, write_items


def _item(tmp_path: Path, **kw):
    return load_items(write_items(tmp_path / "x.json", [raw_item(**kw)]))[0]


def _answers(backend, items) -> dict[str, str]:
    queries = [Query(it, build_prompt(it)) for it in items]
    return {queries[i].item.item_id: reply for i, reply in backend.iter_answers(queries)}


@pytest.mark.parametrize(
    ("reply", "options"),
    [
        ("A", ["A"]),
        ("(B)", ["B"]),
        ("答案：C", ["C"]),
        ("答案是D。", ["D"]),
        ("A and C", ["A", "C"]),
        ("AC", ["A", "C"]),
        ("A, C, A", ["A", "C"]),
        ("Answer: B", ["B"]),
        ("b", []),  # lower case is not an answer in the official rule
        ("I think the best option is the second one.", []),
        ("Hello", []),
        ("", []),
        (None, []),
        ("选B", ["B"]),
        ("B.", ["B"]),
    ],
)
def test_parser_hand_cases(reply, options) -> None:
    assert extract_options(reply) == options


def test_single_choice_uses_the_first_letter(tmp_path: Path) -> None:
    item = _item(tmp_path, label=["B"])
    assert score_reply("B", item) == 1.0
    assert score_reply("(B) because A is rude", item) == 1.0
    assert score_reply("A or B", item) == 0.0
    assert score_reply("b", item) is None
    assert score_reply("no idea", item) is None


def test_multi_choice_partial_credit(tmp_path: Path) -> None:
    item = _item(tmp_path, category="Individual-EP-SituationUnderstanding", label=["A", "C", "D"])
    assert score_reply("A, C, D", item) == 1.0
    assert score_reply("A and C", item) == pytest.approx(2 / 3)
    assert score_reply("C", item) == pytest.approx(1 / 3)
    assert score_reply("A, B", item) == 0.0  # any wrong letter: zero
    assert score_reply("nothing", item) is None


def test_memory_keyword_recall(tmp_path: Path) -> None:
    item = _item(tmp_path, category="Individual-MEM", label=["Tom", "walnut", "Porto"])
    assert score_reply("tom bought a WALNUT", item) == pytest.approx(2 / 3)
    assert score_reply("Tom, walnut, Porto!", item) == 1.0
    assert score_reply("nothing of it", item) == 0.0
    assert score_reply("", item) is None


def test_unparsed_zero_or_skip(tmp_path: Path) -> None:
    raws = [raw_item(label=["A"]), raw_item(label=["A"])]
    items = load_items(write_items(tmp_path / "x.json", raws))
    scores = {items[0].item_id: 1.0, items[1].item_id: None}
    assert aggregate(items, scores, ScoreConfig(unparsed="zero"))["columns"]["SA Style"] == 50.0
    assert aggregate(items, scores, ScoreConfig(unparsed="skip"))["columns"]["SA Style"] == 100.0
    assert aggregate(items, scores, ScoreConfig())["unparsed"] == 1
    with pytest.raises(ValueError, match="unparsed"):
        ScoreConfig(unparsed="half")


def test_memory_items_split_short_and_long_by_utterances(tmp_path: Path) -> None:
    short = _item(tmp_path, category="Individual-MEM", turns=39, label=["x"])
    long = _item(tmp_path, category="Individual-MEM", turns=40, label=["x"])
    cfg = ScoreConfig()
    assert (column_of(short, cfg), column_of(long, cfg)) == ("CM Short", "CM Long")
    assert column_of(long, ScoreConfig(memory_long_min_turns=41)) == "CM Short"


def test_avg_of_the_published_columns_is_the_published_avg() -> None:
    for name, row in PUBLISHED.items():
        assert len(row) == len(PAPER_COLUMNS) + 1, name
        assert sum(row[:9]) / 9 == pytest.approx(row[9], abs=0.011), name


def test_oracle_scores_100_on_every_column(synthetic) -> None:
    items = synthetic + load_benchmark(fixture_paths())
    replies = _answers(OracleBackend(), items)
    summary = aggregate(
        items, {it.item_id: score_reply(replies[it.item_id], it) for it in items}, ScoreConfig()
    )
    assert set(summary["columns"]) == set(PAPER_COLUMNS)
    assert all(v == 100.0 for v in summary["columns"].values()), summary["columns"]
    assert summary["Avg"] == 100.0 and summary["unparsed"] == 0


def test_oracle_scores_100_on_the_real_ep_file(real_data) -> None:
    items = load_items(real_data("socialbench", "emotional_perception.json"))
    replies = _answers(OracleBackend(), items)
    summary = aggregate(
        items, {it.item_id: score_reply(replies[it.item_id], it) for it in items}, ScoreConfig()
    )
    assert summary["columns"]["EP Situ."] == 100.0
    assert summary["columns"]["EP Emo."] == 100.0


def _within_chance(items, seeds=(0,)) -> None:
    cfg = ScoreConfig()
    expected = expected_random_columns(items, cfg)
    for seed in seeds:
        replies = _answers(RandomBackend(seed), items)
        scores = {it.item_id: score_reply(replies[it.item_id], it) for it in items}
        got = aggregate(items, scores, cfg)["columns"]
        for column in PAPER_COLUMNS:
            members = [it for it in items if column_of(it, cfg) == column]
            if not members:
                assert got[column] is None and expected[column] is None
                continue
            # per-item Bernoulli-like variance around each item's own expectation
            var = 0.0
            for it in members:
                if it.category == "Individual-MEM":
                    from roleinteract.scoring import keyword_recall

                    r = [keyword_recall(t.text, it.label) or 0.0 for t in it.dialogue]
                    m = sum(r) / len(r)
                    var += sum((x - m) ** 2 for x in r) / len(r)
                else:
                    n, k = len(it.choices), len(set(it.label))
                    m = expected_random_score(it)
                    var += (1 / k) ** 2 * (k / n) - m**2 if k > 1 else m * (1 - m)
            se = 100.0 * math.sqrt(var) / len(members)
            assert abs(got[column] - expected[column]) <= 4 * se + 1e-9, (
                column,
                got[column],
                expected[column],
                se,
            )


def test_random_lands_on_the_analytic_chance_level_per_column(synthetic) -> None:
    _within_chance(synthetic, seeds=(0, 1))
    expected = expected_random_columns(synthetic, ScoreConfig())
    # sanity of the analytic level itself: gold skewed to A does not move it, option counts do
    assert 15.0 < expected["SA Style"] < 40.0


def test_random_on_the_real_ep_file_lands_on_chance(real_data) -> None:
    items = load_items(real_data("socialbench", "emotional_perception.json"))
    _within_chance(items, seeds=(0, 1, 2))


def test_a_biased_backend_misses_chance(synthetic) -> None:
    """The chance test can fail: always answering 'A' on gold skewed to 'A' is far above chance."""

    cfg = ScoreConfig()
    expected = expected_random_columns(synthetic, cfg)
    scores = {
        it.item_id: score_reply("A", it) if it.category != "Individual-MEM" else 0.0 for it in synthetic
    }
    got = aggregate(synthetic, scores, cfg)["columns"]
    assert got["SA Style"] > expected["SA Style"] + 15


def test_expected_random_score_values(tmp_path: Path) -> None:
    assert expected_random_score(_item(tmp_path, label=["A"], n_choices=4)) == 0.25
    multi = _item(tmp_path, category="Individual-EP-SituationUnderstanding", label=["A", "B"], n_choices=4)
    assert expected_random_score(multi) == pytest.approx(2 / 4 * 1 / 2)
    unreachable = _item(tmp_path, category="Individual-EP-HumorSarcasmDetect", label=["D"], n_choices=3)
    assert expected_random_score(unreachable) == 0.0
