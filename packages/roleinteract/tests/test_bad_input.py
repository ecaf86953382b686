"""Inputs the loader must refuse with a DataFormatError naming the file (issue 28 item 6), and one numbering
convention: 1-based line numbers of the file for JSONL, 1-based item index for JSON arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from roleinteract.data import DataFormatError, load_items
from roleinteract.synthetic import raw_item, write_items


@pytest.mark.parametrize("name", ["empty.json", "empty.jsonl"])
@pytest.mark.parametrize("text", ["[]", "", "\n\n"])
def test_a_file_without_items_is_refused_naming_it(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl") and text == "[]":
        text = "\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match="no items") as err:
        load_items(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["latin1.json", "latin1.jsonl"])
def test_a_latin1_file_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    item = raw_item()
    item["dialogue"][0]["value"] = "caf\u00e9"
    text = (
        json.dumps([item], ensure_ascii=False)
        if name.endswith(".json")
        else json.dumps(item, ensure_ascii=False)
    )
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataFormatError, match="not UTF-8") as err:
        load_items(path)
    assert str(path) in str(err.value)


def test_jsonl_field_errors_name_the_line_of_the_file(tmp_path: Path) -> None:
    bad = raw_item()
    bad.pop("label")
    path = tmp_path / "items.jsonl"
    path.write_text(f"{json.dumps(raw_item())}\n\n{json.dumps(bad)}\n", encoding="utf-8")  # line 2 is blank
    with pytest.raises(DataFormatError) as err:
        load_items(path)
    assert f"{path}: line 3: field 'label'" in str(err.value)


def test_json_array_field_errors_name_the_item_from_1(tmp_path: Path) -> None:
    bad = raw_item()
    bad["meta"]["lang"] = "fr"
    path = write_items(tmp_path / "items.json", [raw_item(), raw_item(), bad])
    with pytest.raises(DataFormatError) as err:
        load_items(path)
    assert f"{path}: item 3: field 'meta.lang'" in str(err.value)


def test_cli_data_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """The CLI keeps hydra_entry's contract (``roleinteract: error: ...``, exit 2), no own error line."""
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    args = [f"data=[{empty}]", "models=[random]", f"cache={tmp_path}/a.jsonl", "fallback_to_fixtures=false"]
    proc = subprocess.run(
        [sys.executable, "-m", "roleinteract", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**__import__("os").environ, "PAPERLAB_RESULTS": str(tmp_path / "results")},
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines[-1].startswith("roleinteract: error: ") and str(empty) in lines[-1], proc.stderr
    assert sum("roleinteract:" in line for line in lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
