"""Fuzzed loaders (paperlab.fuzz): every mutated benchmark file is loaded or refused with a DataFormatError
naming the file; nothing else escapes. Examples per loader: PAPERLAB_FUZZ_EXAMPLES (40 in make test)."""

from __future__ import annotations

import json

from paperlab.fuzz import fuzz_loader
from roleinteract.data import DataFormatError, load_items
from roleinteract.synthetic import raw_item

ITEMS = [
    raw_item(),
    raw_item("Individual-MEM", label=["walnut"]),
    raw_item("Group-SAP-Positive", label=["B"]),
]


def test_fuzz_json_loader() -> None:
    counts = fuzz_loader(
        load_items, json.dumps(ITEMS, ensure_ascii=False).encode(), kind="json",
        name="roleinteract.load_items[json]", error=DataFormatError, suffix=".json",
    )  # fmt: skip
    assert counts["parsed"] + counts["refused"] >= 1 and counts["refused"] >= 1


def test_fuzz_jsonl_loader() -> None:
    text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in ITEMS)
    counts = fuzz_loader(
        load_items, text.encode(), kind="jsonl", name="roleinteract.load_items[jsonl]",
        error=DataFormatError, suffix=".jsonl",
    )  # fmt: skip
    assert counts["parsed"] + counts["refused"] >= 1 and counts["refused"] >= 1
