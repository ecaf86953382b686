"""Inputs the builder and the JSONL loaders must refuse with a DataError naming the file or folder (issue 28
items 5 and 6), and the command line's contract: one line ``paperowl: error: ...``, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paperlab.io import DataError, MissingFileError
from paperowl.builder import BuildConfig, build, load_mpaper
from paperowl.data import samples_from_jsonl

NO_FLOATS = r"""\documentclass{article}
\begin{document}
\section{Intro}
A paper with words only: no figure and no table anywhere in it, which is long enough to be a paragraph.
\end{document}
"""


def test_build_on_a_folder_without_a_paper_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "notes").mkdir(parents=True)
    (src / "README.txt").write_text("not a paper", encoding="utf-8")
    (src / "notes" / "draft.tex").write_text("\\section{No preamble}", encoding="utf-8")
    with pytest.raises(DataError) as err:
        build(src, tmp_path / "out", BuildConfig(render_tables=False))
    assert str(src) in str(err.value) and "\\documentclass" in str(err.value)
    assert not (tmp_path / "out" / "sft").exists()


def test_build_on_a_paper_without_diagrams_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "words"
    src.mkdir()
    (src / "main.tex").write_text(NO_FLOATS, encoding="utf-8")
    with pytest.raises(DataError) as err:
        build(src, tmp_path / "out", BuildConfig(render_tables=False))
    assert str(src) in str(err.value) and "no figure or table" in str(err.value)
    assert not (tmp_path / "out" / "sft").exists()


def test_build_on_a_missing_folder_is_a_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="absent"):
        build(tmp_path / "absent", tmp_path / "out")


def test_build_command_refuses_with_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "paperowl", "build", str(tmp_path / "empty"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("paperowl: error: ") and str(tmp_path / "empty") in lines[-1], proc.stderr
    assert not (tmp_path / "out" / "sft").exists()


def _row(image: str = "imgs/p/d.png") -> dict:
    return {
        "id": "p-1", "task_type": "figure_cap", "task": "cap", "image": [image],
        "conversations": [{"from": "user", "value": "<image>\nCaption?"}, {"from": "assistant", "value": "A plot."}],
    }  # fmt: skip


def _built(tmp_path: Path, rows: list[dict]) -> Path:
    from PIL import Image

    (tmp_path / "imgs" / "p").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "imgs" / "p" / "d.png")
    path = tmp_path / "sft" / "3tasks.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("loader", ["samples", "mpaper"])
def test_jsonl_missing_field_names_file_and_line(tmp_path: Path, loader: str) -> None:
    bad = _row()
    del bad["conversations"]
    path = _built(tmp_path, [_row(), bad])
    with pytest.raises(DataError) as err:
        samples_from_jsonl(path) if loader == "samples" else load_mpaper(tmp_path)
    assert f"{path}:2" in str(err.value) and "conversations" in str(err.value)


def test_jsonl_missing_or_broken_image_names_the_line_and_image(tmp_path: Path) -> None:
    path = _built(tmp_path, [_row(), _row("imgs/p/absent.png")])
    with pytest.raises(DataError) as err:
        samples_from_jsonl(path)
    assert f"{path}:2" in str(err.value) and "absent.png" in str(err.value)
    (tmp_path / "imgs" / "p" / "d.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"3tasks.jsonl:1: .*d.png"):
        samples_from_jsonl(path)


def test_jsonl_with_wrongly_typed_conversations_is_refused(tmp_path: Path) -> None:
    bad = _row()
    bad["conversations"] = "hello"
    path = _built(tmp_path, [bad])
    with pytest.raises(DataError, match=r"3tasks.jsonl:1: field 'conversations'"):
        samples_from_jsonl(path)
