"""The loader: published files load, every malformed item names file, index and field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from roleinteract.data import CATEGORIES, DataFormatError, fixture_paths, load_benchmark, load_items
from roleinteract.synthetic import raw_item, write_items


def test_real_emotional_perception_file_loads_with_published_counts(real_data) -> None:
    items = load_items(real_data("socialbench", "emotional_perception.json"))
    assert len(items) == 969
    counts = Counter(it.category for it in items)
    assert counts == {
        "Individual-EP-DialogueEmotionDetect": 484,
        "Individual-EP-HumorSarcasmDetect": 330,
        "Individual-EP-SituationUnderstanding": 155,
    }
    assert Counter(it.lang for it in items) == {"zh": 574, "en": 395}
    assert sum(it.is_multi_choice for it in items) == 124
    assert len({it.item_id for it in items}) == 969


def test_fixtures_cover_every_category_but_ep() -> None:
    items = load_benchmark(fixture_paths())
    assert {it.category for it in items} == set(CATEGORIES) - {
        "Individual-EP-DialogueEmotionDetect",
        "Individual-EP-HumorSarcasmDetect",
        "Individual-EP-SituationUnderstanding",
    }
    assert {it.lang for it in items} == {"en", "zh"}
    assert any(it.is_multi_choice for it in items)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda it: it.pop("label"), "'label'"),
        (lambda it: it["meta"].update(category="Individual-XX"), "'meta.category'"),
        (lambda it: it["meta"].update(lang="fr"), "'meta.lang'"),
        (lambda it: it.update(label=["Z"]), "'label'"),
        (lambda it: it.update(label=[]), "'label'"),
        (lambda it: it.update(dialogue=[{"from": "User"}]), "'dialogue[0]'"),
        (lambda it: it.update(choices={"A": "only one"}), "'choices'"),
        (lambda it: it["choices"].update(Q="bad letter"), "'choices.Q'"),
        (lambda it: it["meta"].pop("name"), "'meta.name'"),
        (lambda it: it["meta"].update(profile={"Someone else": "x"}), "'meta.profile'"),
    ],
)
def test_malformed_item_names_file_index_and_field(tmp_path: Path, mutate, field: str) -> None:
    items = [raw_item(), raw_item(), raw_item()]
    mutate(items[2])
    path = write_items(tmp_path / "self_awareness.json", items)
    with pytest.raises(DataFormatError) as err:
        load_items(path)
    message = str(err.value)
    assert str(path) in message
    assert "item 3" in message  # 1-based: the third item
    assert f"field {field}" in message


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(raw_item()) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken.jsonl: line 2"):
        load_items(path)
    whole = tmp_path / "broken.json"
    whole.write_text("[{]", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken.json"):
        load_items(whole)


def test_jsonl_and_json_load_the_same_items(tmp_path: Path) -> None:
    raws = [raw_item(label=["B"]), raw_item("Individual-MEM", label=["walnut"])]
    a = load_items(write_items(tmp_path / "x.json", raws))
    (tmp_path / "y.jsonl").write_text("\n".join(json.dumps(r) for r in raws) + "\n", encoding="utf-8")
    b = load_items(tmp_path / "y.jsonl")
    assert [(i.category, i.label, i.dialogue) for i in a] == [(i.category, i.label, i.dialogue) for i in b]


def test_gold_outside_the_choices_is_kept_with_a_warning(tmp_path: Path, caplog) -> None:
    # As in published item 594 (zh humour, gold D among A-C): the official harness keeps it.
    path = write_items(
        tmp_path / "ep.json", [raw_item("Individual-EP-HumorSarcasmDetect", label=["D"], n_choices=3)]
    )
    items = load_items(path)
    assert items[0].label == ("D",)
    assert "not among the choices" in caplog.text


def test_two_files_with_one_stem_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p1 = write_items(tmp_path / "a" / "x.json", [raw_item()])
    p2 = write_items(tmp_path / "b" / "x.json", [raw_item()])
    with pytest.raises(DataFormatError, match="stem"):
        load_benchmark([p1, p2])


def test_jsonl_with_nel_and_line_separators_inside_strings_loads(tmp_path: Path) -> None:
    """The shipped SocialBench text holds U+0085; JSONL written with ensure_ascii=False keeps it raw in the line."""
    raws = [raw_item(), raw_item()]
    raws[0]["dialogue"][0]["value"] = "well\x85 then"
    raws[1]["dialogue"][1]["value"] = "a\u2028b"
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in raws), encoding="utf-8")
    items = load_items(path)
    assert len(items) == 2
    assert (items[0].dialogue[0].text, items[1].dialogue[1].text) == ("well\x85 then", "a\u2028b")
