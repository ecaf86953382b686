"""Data of the LLM pipeline (:mod:`aihf.align`): demonstrations, preference pairs and held-out evaluation prompts,
from JSONL files (one object per line; ``aihf:<file>`` for a file shipped in ``aihf/data/``) or hub datasets (``hub:<name>[:<split>]``, with ``data_dir`` naming a subset:
Anthropic-HH's ``helpful-base``).

- demonstrations: ``prompt`` and ``completion`` (field names configurable), or HH transcripts (``demo_format: hh``:
  the ``chosen`` dialogue, the prompt being everything up to the last ``"\\n\\nAssistant:"``);
- preferences: ``prompt``, ``chosen``, ``rejected``; or HH transcripts (``format: hh``);
- evaluation prompts: ``prompt`` (``columns``) or the prompt of an HH ``chosen`` transcript (``hh``).

A malformed line, a missing or empty field, or an empty set stops with a :class:`paperlab.io.DataError` naming the
file and line (a hub set: the row) and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.config import require
from paperlab.io import DataError, iter_jsonl

HH_SPLIT = "\n\nAssistant:"


def source_file(source: str) -> Path | None:
    """The local file a data source names (``aihf:<file>``: the package's ``data/`` folder); None for a hub set."""
    if not source or source.startswith("hub:"):
        return None
    if source.startswith("aihf:"):
        return Path(__file__).parent / "data" / source[5:]
    return Path(source)


def _load(source: str, data_dir: str = "") -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """``(source, [(where, row)])``: the rows of a JSONL file, ``where`` naming the file and its line (1-based,
    blank lines counted), or of a hub dataset ``hub:<name>[:<split>]`` (``where``: the row, from 1; ``data_dir``:
    the subset folder, as ``datasets.load_dataset(name, data_dir=...)`` takes it; empty: the whole dataset)."""
    if source.startswith("hub:"):
        from datasets import load_dataset

        name, _, split = source[4:].partition(":")
        options = {"data_dir": data_dir} if data_dir else {}
        rows = load_dataset(name, split=split or "train", **options)
        where = f"{source} (data_dir={data_dir})" if data_dir else source
        return where, [(f"{where}: row {i}", dict(r)) for i, r in enumerate(rows, start=1)]
    path = source_file(source)  # aihf:<file>: shipped with the package (the tiny experiment's data)
    return str(path), [(f"{path}: line {n}", row) for n, row in iter_jsonl(path)]


def _field(row: dict[str, Any], key: str, where: str, expected: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value:
        found = "missing" if key not in row else f"{type(value).__name__} {value!r}"[:60]
        raise DataError(f"{where}: field {key!r} is {found}; expected a non-empty string ({expected})")
    return value


def split_hh(text: str, where: str) -> tuple[str, str]:
    """An Anthropic-HH transcript -> (prompt up to and including the last ``Assistant:``, the final response)."""
    cut = text.rfind(HH_SPLIT)
    if cut < 0:
        raise DataError(
            f"{where}: no {HH_SPLIT.strip()!r} turn in the transcript; expected Anthropic-HH format"
        )
    cut += len(HH_SPLIT)
    return text[:cut], text[cut:]


@dataclass
class DataConfig:
    demos: str = ""  # JSONL path or hub:<name>[:<split>]
    prefs: str = ""
    prompt_field: str = "prompt"
    completion_field: str = "completion"  # of the demonstrations
    format: str = (
        "columns"  # preferences: "columns" (prompt/chosen/rejected) or "hh" (Anthropic-HH transcripts)
    )
    demo_format: str = (
        "columns"  # demonstrations: "columns" or "hh" (the ``chosen`` transcript is the demonstration)
    )
    max_demos: int = 0  # 0: all
    max_prefs: int = 0
    data_dir: str = (
        ""  # hub datasets: the subset folder (Anthropic/hh-rlhf: helpful-base, harmless-base, ...)
    )

    def __post_init__(self) -> None:
        for name in ("format", "demo_format"):
            require(
                getattr(self, name) in ("columns", "hh"), f"data.{name}", getattr(self, name), "columns or hh"
            )


def load_demos(cfg: DataConfig) -> list[dict[str, str]]:
    """``[{prompt, completion}]``; an empty set is an error."""
    source, rows = _load(cfg.demos, cfg.data_dir)
    out = []
    for where, row in rows[: cfg.max_demos or None]:
        if cfg.demo_format == "hh":
            prompt, completion = split_hh(_field(row, "chosen", where, "an HH transcript"), where)
        else:
            prompt = _field(row, cfg.prompt_field, where, "the demonstration's prompt")
            completion = _field(row, cfg.completion_field, where, "the demonstrated completion")
        out.append({"prompt": prompt, "completion": completion})
    if not out:
        raise DataError(f"{source}: no demonstrations (the file or split is empty)")
    return out


def load_prefs(cfg: DataConfig) -> list[dict[str, str]]:
    """``[{prompt, chosen, rejected}]``; an empty set is an error (use ``w_pref = 0`` to train without)."""
    source, rows = _load(cfg.prefs, cfg.data_dir)
    out = []
    for where, row in rows[: cfg.max_prefs or None]:
        if cfg.format == "hh":
            prompt, chosen = split_hh(_field(row, "chosen", where, "an HH transcript"), where)
            prompt_r, rejected = split_hh(_field(row, "rejected", where, "an HH transcript"), where)
            if prompt_r != prompt:
                raise DataError(f"{where}: 'chosen' and 'rejected' transcripts differ before the last reply")
        else:
            prompt = _field(row, cfg.prompt_field, where, "the shared prompt")
            chosen = _field(row, "chosen", where, "the preferred completion")
            rejected = _field(row, "rejected", where, "the dispreferred completion")
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not out:
        raise DataError(f"{source}: no preference pairs (the file or split is empty)")
    return out


def load_prompts(
    source: str, fmt: str = "columns", field: str = "prompt", limit: int = 0, data_dir: str = ""
) -> list[str]:
    """Held-out prompts for evaluation: the ``field`` of each row (``columns``) or the prompt of each HH ``chosen``
    transcript (``hh``); ``limit`` keeps the first rows (0: all). An empty set is an error."""
    where_src, rows = _load(source, data_dir)
    out = []
    for where, row in rows[: limit or None]:
        if fmt == "hh":
            out.append(split_hh(_field(row, "chosen", where, "an HH transcript"), where)[0])
        else:
            out.append(_field(row, field, where, "the evaluation prompt"))
    if not out:
        raise DataError(f"{where_src}: no evaluation prompts (the file or split is empty)")
    return out
