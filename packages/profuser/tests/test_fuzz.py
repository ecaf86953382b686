"""Fuzzed loaders (paperlab.fuzz): every mutated fusion corpus file (ShareGPT ``conversations`` or two text fields,
as a JSON list or JSONL) is loaded or refused with a DataError naming the file; nothing else escapes. Examples
per loader: PAPERLAB_FUZZ_EXAMPLES (40 in make test)."""

from __future__ import annotations

import json

from paperlab.fuzz import fuzz_loader
from profuser.config import DataConfig
from profuser.corpus import load_conversations

ROWS = [
    {"id": "a", "conversations": [{"from": "human", "value": "add 1 2 ="}, {"from": "gpt", "value": "3"}]},
    {"id": 7, "conversations": [{"from": "human", "value": "rev ab ="}, {"from": "gpt", "value": "ba"}]},
    {"conversations": [{"from": "human", "value": "caf\u00e9 ?"}, {"from": "gpt", "value": "yes \u2028 no"}]},
]
FIELDS = [{"prompt": "add 1 2 =", "response": "3"}, {"id": "x", "prompt": "rev ab =", "response": "ba"}]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _check(counts) -> None:
    assert counts["parsed"] + counts["refused"] >= 1 and counts["refused"] >= 1


def test_fuzz_conversations_jsonl() -> None:
    _check(fuzz_loader(load_conversations, _jsonl(ROWS), kind="jsonl", name="profuser.load_conversations[jsonl]",
                       suffix=".jsonl"))  # fmt: skip


def test_fuzz_conversations_json_list() -> None:
    _check(fuzz_loader(load_conversations, json.dumps(ROWS).encode(), kind="json",
                       name="profuser.load_conversations[json]", suffix=".json"))  # fmt: skip


def test_fuzz_fields_jsonl() -> None:
    def load(path):
        return load_conversations(path, DataConfig(dataset=str(path), format="fields"))

    _check(fuzz_loader(load, _jsonl(FIELDS), kind="jsonl", name="profuser.load_conversations[fields]",
                       suffix=".jsonl"))  # fmt: skip
