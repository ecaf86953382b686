"""A user's input is checked before any work, and a derived file is never served stale (issue 28): the LongBench
loader parses or refuses every mutated file with a DataError naming it (fuzzed), a missing or malformed data file
stops ``paper_longbench`` before the model is loaded, and the cached LMs and controllers are keyed by every setting
and input file they come from (:func:`paperlab.io.derived_key`)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from adore.controller import ControllerConfig, controller_checkpoint
from adore.experiment import run
from adore.lm import LMExperimentConfig, lm_cache_dir, text_corpus
from adore.qa import load_longbench
from adore.recall import RecallExperimentConfig, _lm_checkpoint
from paperlab.config import compose
from paperlab.fuzz import fuzz_loader
from paperlab.io import DataError, MissingFileError
from paperlab.models import train_tiny_tokenizer

ROWS = [
    {"context": "paris is the capital of france", "input": "capital?", "answers": ["paris"], "_id": "a"},
    {"context": "the cat sat on the mat\u2028near the door", "input": "where?", "answers": ["mat", "door"]},
    {"context": "x" * 50, "input": "what\x85?", "answers": ["x"], "_id": 3},
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tiny_tokenizer([r["context"] for r in ROWS], vocab_size=300)


def test_longbench_loader_fuzzed(tokenizer) -> None:
    valid = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode("utf-8")
    counts = fuzz_loader(
        lambda p: load_longbench(p, tokenizer, max_context=48),
        valid,
        kind="jsonl",
        name="adore.load_longbench",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0, counts


def test_longbench_loader_refusals_name_file_line_and_field(tmp_path, tokenizer) -> None:
    def refused(rows: list, match: str) -> None:
        path = tmp_path / "bad.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(DataError, match=match):
            load_longbench(path, tokenizer)

    refused([ROWS[0], {**ROWS[0], "answers": []}], r"bad\.jsonl:2: field 'answers' must be a non-empty list")
    refused([{**ROWS[0], "answers": [1]}], r"bad\.jsonl:1: field 'answers'")
    refused([{**ROWS[0], "_id": {"x": 1}}], r"bad\.jsonl:1: field '_id'")
    refused([], r"bad\.jsonl: no examples")
    with pytest.raises(MissingFileError, match=r"qa\.data: .*absent\.jsonl: no such file"):
        load_longbench(tmp_path / "absent.jsonl", tokenizer)


@pytest.mark.parametrize("content", [None, '{"context": "c", "input": \n'])
def test_paper_longbench_checks_its_data_before_loading_the_model(tmp_path, monkeypatch, content) -> None:
    """A missing or malformed qa.data file is refused before the (7B) model is loaded: loading it here would fail
    with another error (the hub is off, the model name does not exist)."""
    import paperlab.models

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data were checked")

    monkeypatch.setattr(paperlab.models, "load_tokenizer", no_model)
    monkeypatch.setattr(paperlab.models, "load_causal_lm", no_model)
    data = tmp_path / "data.jsonl"
    if content is not None:
        data.write_text(content)
    cfg = compose("adore", ["experiment=paper_longbench", "qa.model=no/such-model", f"qa.data=[{data}]"])
    with pytest.raises(DataError, match=r"data\.jsonl"):
        run(cfg)


def test_recall_lm_key_follows_the_settings_that_shape_it() -> None:
    base = RecallExperimentConfig()
    key = _lm_checkpoint(base).name
    for change in (
        {"lm_lr": 1e-3},
        {"lm_steps": 10},
        {"seed": 1},
        {"task": dataclasses.replace(base.task, n_pairs=4)},
    ):
        assert _lm_checkpoint(dataclasses.replace(base, **change)).name != key, change
    for same in ({"checkpoint_every": 7}, {"eval_sequences": 3}, {"budgets": [0.5]}, {"name": "other"}):
        assert _lm_checkpoint(dataclasses.replace(base, **same)).name == key, same


def test_controller_key_follows_settings_origin_and_input_files(tmp_path) -> None:
    ctl = ControllerConfig()
    origin = {"lm": "recall-lm-x", "seed": 0}
    key = controller_checkpoint(origin, ctl).name
    assert controller_checkpoint(origin, dataclasses.replace(ctl, checkpoint_every=5)).name == key
    assert controller_checkpoint(origin, dataclasses.replace(ctl, lr=1e-4)).name != key
    assert controller_checkpoint({**origin, "seed": 1}, ctl).name != key
    data = tmp_path / "qasper.jsonl"
    data.write_text('{"context": "c", "input": "q", "answers": ["a"]}\n')
    with_file = controller_checkpoint(origin, ctl, [data]).name
    data.write_text('{"context": "another", "input": "q", "answers": ["a"]}\n')
    assert controller_checkpoint(origin, ctl, [data]).name != with_file


def test_text_lm_cache_is_not_served_for_renamed_or_edited_books(tmp_path) -> None:
    """The tokenizer and LM trained on a folder of books are keyed by the files, not only by their text: renaming a
    book moves it between the train and held-out parts (split by file name) while the concatenated text, the old
    key, stays the same."""
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text("first book " * 50)
    (books / "b.txt").write_text("second book " * 50)
    cfg = LMExperimentConfig(text_files=[str(books)])
    before = lm_cache_dir(cfg, text_corpus(cfg.text_files)[2])
    assert lm_cache_dir(cfg, text_corpus(cfg.text_files)[2]) == before  # stable while nothing changes
    assert (
        lm_cache_dir(dataclasses.replace(cfg, checkpoint_every=1), text_corpus(cfg.text_files)[2]) == before
    )
    assert lm_cache_dir(dataclasses.replace(cfg, lr=1e-4), text_corpus(cfg.text_files)[2]) != before
    os.rename(books / "b.txt", books / "c.txt")  # same text, same order: the old digest did not change
    renamed = lm_cache_dir(cfg, text_corpus(cfg.text_files)[2])
    assert renamed != before
    stat = (books / "a.txt").stat()
    (books / "a.txt").write_text("FIRST book " * 50)  # same size
    os.utime(books / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert lm_cache_dir(cfg, text_corpus(cfg.text_files)[2]) not in (before, renamed)


def test_missing_text_files_are_a_data_error(tmp_path) -> None:
    with pytest.raises(MissingFileError, match=r"lm\.text_files"):
        text_corpus([str(tmp_path / "none")])
    (tmp_path / "one.txt").write_text("only one")
    with pytest.raises(DataError, match="need at least 2"):
        text_corpus([str(tmp_path / "one.txt")])


def test_changed_recall_settings_train_a_new_lm(tmp_path: Path, monkeypatch) -> None:
    """End to end: a second run with another LM learning rate does not reuse the first run's LM (a new cache
    file), one with another checkpoint interval does."""
    from adore.recall import recall_lm

    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path))
    cfg = RecallExperimentConfig(
        task=dataclasses.replace(RecallExperimentConfig().task, n_pairs=2), lm_steps=4
    )
    cfg.progress = False
    recall_lm(cfg)
    recall_lm(dataclasses.replace(cfg, checkpoint_every=2))
    assert len(list((tmp_path / "adore").glob("recall-lm-*.pt"))) == 1
    recall_lm(dataclasses.replace(cfg, lm_lr=1e-4))
    assert len(list((tmp_path / "adore").glob("recall-lm-*.pt"))) == 2
