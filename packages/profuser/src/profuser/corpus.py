"""The paper-scale fusion corpus (``data.*``): (prompt, ground truth) pairs of ShareGPT-style ``conversations``
(the first turn is the prompt, the second the ground truth) or of two text fields, from a local JSON / JSONL file
(:func:`load_conversations`) or a data set ``datasets`` can read (a hub name or a folder).

Every row is checked before any model is loaded: a row that is not an object, ``conversations`` that are not a
list of at least two ``{from, value}`` objects with a text ``value``, a missing or non-text field, or an id used
twice is a :class:`paperlab.io.DataError` naming the file, the line (JSONL) or item (JSON list, from 1; a data
set's row), the field and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from paperlab.io import DataError, existing_file, iter_jsonl
from profuser.config import DataConfig, is_local_file
from profuser.represent import Sample


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        got = "missing" if value is None else f"{type(value).__name__} {repr(value)[:40]}"
        raise DataError(f"{where}: {field} is {got}; expected a string")
    if not value.strip():
        raise DataError(f"{where}: {field} is empty; expected a non-empty string")
    return value


def sample_of(row: Any, where: str, data: DataConfig, index: int) -> Sample:
    """The :class:`~profuser.represent.Sample` of one row (``where`` names its file and line or item)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if data.format == "sharegpt":
        turns = row.get("conversations")
        if not isinstance(turns, list) or len(turns) < 2:
            got = "missing" if turns is None else type(turns).__name__
            if isinstance(turns, list):
                got = f"a list of {len(turns)} turn(s)"
            raise DataError(
                f"{where}: conversations is {got}; expected a list of >= 2 turns {{from, value}} (prompt, answer)"
            )
        for j in (0, 1):
            if not isinstance(turns[j], dict):
                raise DataError(
                    f"{where}: conversations[{j}] is {type(turns[j]).__name__} {str(turns[j])[:40]!r}; "
                    "expected an object {from, value}"
                )
        prompt = _text(turns[0].get("value"), where, "conversations[0].value")
        response = _text(turns[1].get("value"), where, "conversations[1].value")
    else:
        for name in (data.prompt_field, data.response_field):
            if name not in row:
                raise DataError(f"{where}: no field {name!r} (fields: {sorted(map(str, row))})")
        prompt = _text(row[data.prompt_field], where, data.prompt_field)
        response = _text(row[data.response_field], where, data.response_field)
    uid = row.get("id", index)
    if not isinstance(uid, str | int) or isinstance(uid, bool):
        raise DataError(f"{where}: id is {type(uid).__name__}; expected a string or an integer")
    return Sample(str(uid), prompt, " " + response.strip())


def samples_of(rows: Iterable[tuple[str, Any]], data: DataConfig, source: str) -> list[Sample]:
    """Samples of ``(where, row)`` pairs, the first ``data.limit`` (0: all); an id used twice is refused."""
    out: list[Sample] = []
    seen: dict[str, str] = {}
    for i, (where, row) in enumerate(rows):
        if data.limit and i >= data.limit:
            break
        sample = sample_of(row, where, data, i)
        if sample.uid in seen:
            raise DataError(
                f"{where}: id {sample.uid!r} is used again (first at {seen[sample.uid]}); expected unique ids"
            )
        seen[sample.uid] = where
        out.append(sample)
    if not out:
        raise DataError(f"{source}: no conversations; expected at least one")
    return out


def load_conversations(path: str | Path, data: DataConfig | None = None) -> list[Sample]:
    """Samples of a local file: a JSON list of rows, or JSONL (one row per line)."""
    data = data or DataConfig(dataset=str(path))
    path = existing_file(path, "data.dataset")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte {raw[err.start]:#x}); save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: empty file; expected a JSON list of conversations or JSONL (one per line)")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})"
            ) from None
        if not isinstance(rows, list):  # pragma: no cover - a text starting with "[" parses to a list
            raise DataError(f"{path}: expected a JSON list of conversations")
        return samples_of(((f"{path}: item {i + 1}", r) for i, r in enumerate(rows)), data, str(path))
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "\n" in text.strip():
        raise DataError(
            f"{path}: one JSON object over several lines; expected a JSON list of conversations or JSONL "
            "(one object per line)"
        )
    return samples_of(((f"{path}:{n}", r) for n, r in iter_jsonl(path)), data, str(path))


def load_fusion_samples(data: DataConfig) -> list[Sample]:
    """The fusion corpus of ``data``: a local JSON / JSONL file, or a data set ``datasets`` reads (the main
    process downloads, the others read its cache)."""
    if is_local_file(data.dataset):
        return load_conversations(data.dataset, data)
    from datasets import load_dataset

    from paperlab.scale import distributed_state

    with distributed_state().main_process_first():
        rows = load_dataset(data.dataset, split=data.split)
    return samples_of(((f"{data.dataset}[{i}]", row) for i, row in enumerate(rows)), data, data.dataset)
