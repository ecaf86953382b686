"""Trajectory files a loader must refuse (issue 28 item 6) with a DataError naming the file and what was expected:
an empty file, a top-level object, no trajectories, another encoding; field errors of a JSONL file name its line
(1-based, blank lines counted), of a JSON list the item (from 1). The ToolBench converter's command line and the
experiment's keep the contract: one line, exit 2."""

from __future__ import annotations

import json
import sys

import pytest

from alpha_umi.data import load_trajectories
from alpha_umi.toolbench import main as convert_main
from paperlab.io import DataError, MissingFileError

OK = {"tools": [{"Name": "f"}], "instruction": "q", "conversations": [{"from": "user", "value": "q"}]}


@pytest.mark.parametrize("name", ["t.json", "t.jsonl"])
@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file; expected a JSON list of trajectories"),
        ("\n \n", "empty file; expected a JSON list of trajectories"),
        ("{}", r"a JSON object with keys \[\]; expected a JSON list of trajectories"),
        ('{"data": [1]}', r"a JSON object with keys \['data'\]; expected a JSON list"),
        ("[]", "no trajectories; expected a JSON list of trajectories"),
        (json.dumps(OK, indent=2), "one JSON object over several lines; expected a JSON list"),
    ],
    ids=["empty", "blank", "empty-object", "other-object", "empty-list", "pretty-object"],
)
def test_a_file_without_trajectories_is_refused_naming_it(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        load_trajectories(path)
    assert str(path) in str(err.value)


def test_jsonl_field_errors_name_the_line_of_the_file(tmp_path):
    path = tmp_path / "t.jsonl"
    bad = {**OK, "tools": "f"}
    path.write_text(f"{json.dumps(OK)}\n\n{json.dumps(bad)}\n", encoding="utf-8")  # line 2 is blank
    with pytest.raises(DataError, match=r"t\.jsonl:3: field 'tools' is str"):
        load_trajectories(path)


def test_a_latin1_or_missing_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps([{**OK, "instruction": "caf\u00e9"}], ensure_ascii=False).encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.json:1: not UTF-8"):
        load_trajectories(path)
    with pytest.raises(MissingFileError, match=r"absent\.json: no such file"):
        load_trajectories(tmp_path / "absent.json")


def test_the_converter_command_line_prints_one_line_and_exits_2(tmp_path, capsys):
    answers = tmp_path / "data" / "answer" / "G1_answer"
    answers.mkdir(parents=True)
    gen = {"query": "q", "function": [{"name": "f", "parameters": "none"}], "train_messages": [[]]}
    (answers / "1_DFS.json").write_text(json.dumps({"answer_generation": gen}))
    assert convert_main([str(tmp_path / "data"), str(tmp_path / "out.json")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("alpha_umi.toolbench: error: "), err
    assert "1_DFS.json: answer_generation.function[0].parameters" in err[0]
    (answers / "1_DFS.json").write_text(json.dumps({"answer_generation": {**gen, "train_messages": []}}))
    assert convert_main([str(tmp_path / "data"), str(tmp_path / "out.json")]) == 2  # nothing to convert
    assert "no answer with train_messages" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_the_experiment_refuses_a_bad_trajectory_file_before_any_model(tmp_path, monkeypatch, capsys):
    import alpha_umi.cli
    import alpha_umi.experiment

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the data were checked")

    monkeypatch.setattr(alpha_umi.experiment, "_base", no_model)
    empty = tmp_path / "train.json"
    empty.write_text("", encoding="utf-8")
    argv = ["alpha_umi", "data.kind=toolbench", f"data.train_path={empty}", f"data.test_path={empty}"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    with pytest.raises(SystemExit) as done:
        alpha_umi.cli.main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert done.value.code == 2 and len(lines) == 1, lines
    assert (
        lines[0] == f"alpha_umi: error: {empty}: empty file; expected a JSON list of trajectories {{tools, "
        "instruction, conversations} or JSONL (one per line)"
    ), lines
