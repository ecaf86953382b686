"""paperlab.fuzz and paperlab.testing.kill_and_resume: each catches the bug it is for, and passes a loader / job
that keeps the contract."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from paperlab.fuzz import _mutate_tree, fuzz_loader, mutated
from paperlab.io import DataError, read_jsonl
from paperlab.testing import kill_and_resume

VALID = b'{"id": 1, "text": "hello", "tags": ["a", "b"]}\n{"id": 2, "text": "world", "tags": []}\n'
SCRIPT = Path(__file__).parent / "scripts" / "resumable_job.py"


def strict_loader(path: Path) -> list[dict]:
    rows = read_jsonl(path)
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get("text"), str):
            raise DataError(f"{path}: item {i}: field 'text': expected a string, got {row.get('text')!r}")
    return rows


def test_a_loader_that_keeps_the_contract_passes_and_both_outcomes_occur():
    counts = fuzz_loader(strict_loader, VALID, kind="jsonl", name="strict", suffix=".jsonl", examples=120)
    assert counts["parsed"] + counts["refused"] == 120
    assert counts["parsed"] >= 5 and counts["refused"] >= 5


def test_an_escaping_error_fails_the_fuzz_test():
    def naive(path: Path) -> list[dict]:  # the bug the contract is about: json's own error escapes
        return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]

    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        fuzz_loader(naive, VALID, kind="jsonl", name="naive", suffix=".jsonl", examples=60)


def test_a_refusal_that_does_not_name_the_file_fails():
    def anonymous(path: Path) -> list[dict]:
        try:
            return read_jsonl(path)
        except DataError:
            raise DataError("bad input") from None

    with pytest.raises(AssertionError, match="does not name the file"):
        fuzz_loader(anonymous, VALID, kind="jsonl", name="anonymous", suffix=".jsonl", examples=60)


def test_folder_loaders_mutate_one_file_at_a_time(tmp_path):
    seen: Counter = Counter()

    def load(folder: Path) -> None:
        for name in ("a.jsonl", "b.jsonl"):
            if (folder / name).read_bytes() != VALID:
                seen[name] += 1
        read_jsonl(folder / "a.jsonl")
        read_jsonl(folder / "b.jsonl")

    fuzz_loader(load, {"a.jsonl": VALID, "b.jsonl": VALID}, kind="jsonl", name="folder", examples=80)
    assert seen["a.jsonl"] > 10 and seen["b.jsonl"] > 10


def test_structural_mutations_drop_rename_and_retype_fields():
    from hypothesis import given, settings

    doc = {"id": 1, "text": "hello", "tags": ["a"]}
    found: set[str] = set()

    @settings(max_examples=200, derandomize=True, database=None)
    @given(mutated(json.dumps(doc).encode(), "json"))
    def collect(data: bytes) -> None:
        try:
            new = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            found.add("text-level")
            return
        if isinstance(new, dict):
            if set(new) < set(doc):
                found.add("dropped")
            elif set(new) != set(doc) and len(new) == len(doc):
                found.add("renamed")
            elif set(new) == set(doc) and new != doc:
                found.add("retyped")

    collect()
    assert {"dropped", "renamed", "retyped", "text-level"} <= found
    assert _mutate_tree.__doc__


def test_kill_and_resume_passes_a_job_that_resumes(tmp_path):
    report = kill_and_resume(
        [sys.executable, str(SCRIPT)], workdir=tmp_path,
        outputs=lambda d: json.loads((d / "result.json").read_text()), kills=3, seed=1,
    )  # fmt: skip
    assert report.reference_writes == 31
    assert len(report.kills) == 3 and report.landed >= 1


def test_kill_and_resume_accepts_a_sigterm_after_the_last_write(tmp_path):
    # seed 7 draws the kill points 11 and 31: the second lands after result.json, in the job's shutdown
    report = kill_and_resume(
        [sys.executable, str(SCRIPT), "--late-term"], workdir=tmp_path,
        outputs=lambda d: json.loads((d / "result.json").read_text()), kills=2, seed=7,
    )  # fmt: skip
    assert [k["after_write"] for k in report.kills] == [11, 31]
    assert [k["returncode"] for k in report.kills] == [143, -15]


def test_kill_and_resume_catches_a_job_that_restarts_from_scratch(tmp_path):
    with pytest.raises(AssertionError, match="outputs differ"):
        kill_and_resume(
            [sys.executable, str(SCRIPT), "--no-resume"], workdir=tmp_path,
            outputs=lambda d: json.loads((d / "result.json").read_text()), kills=2, seed=1,
        )  # fmt: skip


def test_the_make_fuzz_report_counts_every_example(tmp_path, monkeypatch):
    from paperlab.fuzz import REPORT_ENV, summarize

    report = tmp_path / "report.jsonl"
    monkeypatch.setenv(REPORT_ENV, str(report))
    counts = fuzz_loader(
        strict_loader, VALID, kind="jsonl", name="shared.strict", suffix=".jsonl", examples=30
    )
    text = summarize(report, tmp_path / "summary.md")
    assert f"| shared.strict | 30 | {counts['parsed']} | {counts['refused']} | 0 |" in text
    assert "1 loaders, 30 examples" in text


def test_fuzz_paperlab_read_jsonl():
    fuzz_loader(read_jsonl, VALID, kind="jsonl", name="paperlab.read_jsonl", suffix=".jsonl")


def test_fuzz_paperlab_read_json():
    from paperlab.io import read_json

    doc = json.dumps({"rows": [{"id": 1, "text": "hello"}], "meta": {"n": 1}}).encode()
    fuzz_loader(read_json, doc, kind="json", name="paperlab.read_json", suffix=".json")


def test_fuzz_paperlab_jsonl_cache():
    from paperlab.io import JsonlCache

    cache = b'{"key": "a", "answer": "x"}\n{"key": "b", "answer": "y\\u2028z"}\n'
    fuzz_loader(
        lambda p: len(JsonlCache(p)), cache, kind="jsonl", name="paperlab.JsonlCache", suffix=".jsonl"
    )
