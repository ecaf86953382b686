"""A user's data or config mistakes end in one line and exit 2 (paperlab's contract, issue 28 items 5 and 6): the
errors profuser raises about data or config are paperlab UserErrors, and the fusion corpus refuses rows it cannot
use (turns given as strings, a non-text ``value``, ...) naming the file, the line or item, the field and what was
expected, before any model is loaded."""

from __future__ import annotations

import json
import sys

import pytest

import profuser.cli
from paperlab.io import DataError, MissingFileError
from profuser.align import VocabMapping
from profuser.chat import ensure_chat_template
from profuser.config import DataConfig
from profuser.experiment import load_fusion_samples
from profuser.represent import RepresentationStore

OK = {"id": "a", "conversations": [{"from": "human", "value": "add 1 2 ="}, {"from": "gpt", "value": "3"}]}


def load_conversations(*args):
    from profuser.corpus import load_conversations  # new in issue 28: imported here so the old tests collect

    return load_conversations(*args)


def _main(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    monkeypatch.setattr(sys, "argv", ["profuser", *args])
    with pytest.raises(SystemExit) as done:
        profuser.cli.main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return done.value.code, lines


class _NoTemplate:
    chat_template = None


@pytest.mark.parametrize(
    "fail",
    [
        lambda tmp: VocabMapping([], ["a"], source_name="src"),  # VocabMappingError
        lambda tmp: RepresentationStore(tmp / "store").load(),  # RepresentationError
        lambda tmp: ensure_chat_template(_NoTemplate(), "", "src"),  # no chat template
    ],
    ids=["vocab-mapping", "representation-store", "chat-template"],
)
def test_data_and_config_errors_print_one_line_and_exit_2(fail, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(profuser.cli, "run", lambda cfg: fail(tmp_path))
    code, lines = _main(monkeypatch, capsys, "experiment=tiny")
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("profuser: error: "), lines


def _rows(monkeypatch, rows):
    """load_fusion_samples on a hub data set holding ``rows`` (``datasets.load_dataset`` stubbed)."""
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: rows)
    return load_fusion_samples(DataConfig(dataset="org/corpus"))


@pytest.mark.parametrize(
    "turns, message",
    [
        (["add 1 2 =", "3"], r"org/corpus\[1\]: conversations\[0\] is str 'add 1 2 ='; expected an object"),
        (
            [{"from": "human", "value": 7}, OK["conversations"][1]],
            r"conversations\[0\]\.value is int 7.*string",
        ),
        (
            [OK["conversations"][0], {"from": "gpt", "value": 3}],
            r"conversations\[1\]\.value is int 3.*string",
        ),
        ([OK["conversations"][0]], r"conversations is a list of 1 turn\(s\); expected a list of >= 2"),
    ],
)
def test_hub_rows_with_string_turns_or_an_int_value_are_refused(monkeypatch, turns, message):
    with pytest.raises(DataError, match=message):
        _rows(monkeypatch, [OK, {"id": "b", "conversations": turns}])


def test_local_corpus_names_the_line_of_a_jsonl_file_and_the_item_of_a_json_list(tmp_path):
    bad = {"id": "b", "conversations": ["add 1 2 =", "3"]}
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(f"{json.dumps(OK)}\n\n{json.dumps(bad)}\n", encoding="utf-8")  # line 2 blank
    with pytest.raises(DataError, match=r"c\.jsonl:3: conversations\[0\] is str"):
        load_conversations(jsonl)
    listed = tmp_path / "c.json"
    listed.write_text(
        json.dumps([OK, {**OK, "id": "c", "conversations": [OK["conversations"][0], {"value": 1}]}])
    )
    with pytest.raises(DataError, match=r"c\.json: item 2: conversations\[1\]\.value is int"):
        load_conversations(listed)
    good = tmp_path / "ok.jsonl"
    good.write_text(json.dumps(OK) + "\n" + json.dumps({**OK, "id": "z"}) + "\n", encoding="utf-8")
    assert [(s.uid, s.prompt, s.response) for s in load_conversations(good)] == [
        ("a", "add 1 2 =", " 3"),
        ("z", "add 1 2 =", " 3"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("[]", "no conversations"),
        (json.dumps(OK, indent=1), "one JSON object over several lines"),
        (json.dumps(OK) + "\n" + json.dumps(OK), r":2: id 'a' is used again \(first at .*:1\)"),
        (
            json.dumps({"conversations": [{"value": "p"}, {"value": " "}]}),
            r"conversations\[1\]\.value is empty",
        ),
    ],
    ids=["empty", "empty-list", "one-object", "duplicate-id", "blank-answer"],
)
def test_local_corpus_without_usable_rows_is_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        load_conversations(path)
    assert str(path) in str(err.value)


def test_fields_format_names_the_missing_field(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"prompt": "p", "answer": "r"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"f\.jsonl:1: no field 'response'"):
        load_conversations(path, DataConfig(dataset=str(path), format="fields"))


# the paper config run as one process; the corpus is checked before any tokenizer or model is loaded
PAPER = ["experiment=paper", "train.scale.launch=single", "train.scale.num_gpus=1"]


def test_cli_missing_or_malformed_corpus_is_one_line_before_any_model(tmp_path, monkeypatch, capsys):
    import profuser.experiment

    def no_model(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the corpus was checked")

    monkeypatch.setattr(profuser.experiment, "load_tokenizer", no_model)
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    missing = tmp_path / "absent.jsonl"
    code, lines = _main(monkeypatch, capsys, *PAPER, f"data.dataset={missing}")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("profuser: error: data.dataset: ") and str(missing) in lines[0], lines
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"conversations": [1, 2]}) + "\n", encoding="utf-8")
    code, lines = _main(monkeypatch, capsys, *PAPER, f"data.dataset={bad}")
    assert code == 2 and len(lines) == 1 and f"{bad}:1: conversations[0] is int" in lines[0], lines
    assert not (tmp_path / "results").exists()  # nothing written before the corpus was read


def test_missing_local_corpus_is_a_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        load_conversations(tmp_path / "nope.json")
