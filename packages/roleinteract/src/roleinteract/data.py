"""Loading the RoleInteract / SocialBench JSON files exactly as published, with validation.

Each file is a JSON list of items ``{dialogue, instruction, choices, label, meta}`` (the benchmark README,
"Data Structure"): ``dialogue`` is a list of ``{from, value}`` turns, ``choices`` maps option letters to text
(absent for the open-ended memory questions), ``label`` is a list of option letters (or, for memory
questions, of keywords), and ``meta`` carries ``category`` and ``lang`` plus, per dimension, ``name`` (the
role played) and ``profile`` (role name -> profile text). A malformed item stops the load with an error that
names the file, where the item is (``item N``: 1-based index in a JSON array; ``line N``: 1-based line of a JSONL
file) and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from paperlab.io import DataError, MissingFileError, _read_text

# The nine categories of the published files (official `dataset.py`, `format_prompt`).
SA_STYLE = "Individual-SA-RoleStyle"
SA_KNOWLEDGE = "Individual-SA-RoleKnowledge"
EP_EMOTION = "Individual-EP-DialogueEmotionDetect"
EP_HUMOR = "Individual-EP-HumorSarcasmDetect"
EP_SITUATION = "Individual-EP-SituationUnderstanding"
MEMORY = "Individual-MEM"
SP_POSITIVE = "Group-SAP-Positive"
SP_NEUTRAL = "Group-SAP-Neutral"
SP_NEGATIVE = "Group-SAP-Negative"
CATEGORIES = (
    SA_STYLE,
    SA_KNOWLEDGE,
    EP_EMOTION,
    EP_HUMOR,
    EP_SITUATION,
    MEMORY,
    SP_POSITIVE,
    SP_NEUTRAL,
    SP_NEGATIVE,
)
GROUP_CATEGORIES = (SP_POSITIVE, SP_NEUTRAL, SP_NEGATIVE)
PROFILE_CATEGORIES = (SA_STYLE, SA_KNOWLEDGE, MEMORY, *GROUP_CATEGORIES)
LANGS = ("en", "zh")
log = logging.getLogger(__name__)

OPTION_LETTERS = "ABCDEFGH"  # the official answer parser knows A-H

# The four published files and the dimension each holds.
PUBLISHED_FILES = {
    "self_awareness": "self_awareness.json",
    "emotional_perception": "emotional_perception.json",
    "conversation_memory": "conversation_memory.json",
    "social_preference": "social_preference.json",
}


class DataFormatError(DataError):
    """A benchmark file does not follow the published format; the message names file, index and field."""


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str


@dataclass(frozen=True)
class Item:
    """One benchmark question. ``item_id`` is ``<file stem>:<index in the file>`` (the data has no ids)."""

    item_id: str
    category: str
    lang: str
    dialogue: tuple[Turn, ...]
    instruction: str
    choices: dict[str, str] | None
    label: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def role_name(self) -> str | None:
        return self.meta.get("name")

    @property
    def profiles(self) -> dict[str, str]:
        return dict(self.meta.get("profile") or {})

    @property
    def is_open_ended(self) -> bool:
        return self.category == MEMORY

    @property
    def is_multi_choice(self) -> bool:
        return not self.is_open_ended and len(self.label) > 1


def _fail(path: Path | str, where: str | None, fieldname: str, expected: str, got: Any) -> DataFormatError:
    place = f"{path}" if where is None else f"{path}: {where}"
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return DataFormatError(f"{place}: field {fieldname!r}: expected {expected}, got {shown}")


def parse_item(
    raw: Any, index: int, path: Path | str, stem: str | None = None, where: str | None = None
) -> Item:
    """Validate one raw item of a published file and return it as an :class:`Item`.

    ``index`` (0-based, in the file) makes the item id; errors say ``where`` the item is (default ``item
    <index + 1>``; a JSONL file passes ``line <number>``)."""
    index_where = where if where is not None else f"item {index + 1}"
    if not isinstance(raw, dict):
        raise _fail(path, index_where, "<item>", "a JSON object", raw)
    for key in ("dialogue", "label", "meta"):
        if key not in raw:
            raise _fail(path, index_where, key, "a field present", "<missing>")
    meta = raw["meta"]
    if not isinstance(meta, dict):
        raise _fail(path, index_where, "meta", "an object", meta)
    category = meta.get("category")
    if category not in CATEGORIES:
        raise _fail(path, index_where, "meta.category", f"one of {', '.join(CATEGORIES)}", category)
    lang = meta.get("lang")
    if not isinstance(lang, str) or lang.lower() not in LANGS:
        raise _fail(path, index_where, "meta.lang", "'en' or 'zh'", lang)

    dialogue = raw["dialogue"]
    if not isinstance(dialogue, list) or not dialogue:
        raise _fail(path, index_where, "dialogue", "a non-empty list of {from, value}", dialogue)
    turns = []
    for t, turn in enumerate(dialogue):
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("from"), str)
            or not isinstance(turn.get("value"), str)
        ):
            raise _fail(path, index_where, f"dialogue[{t}]", "an object with string 'from' and 'value'", turn)
        turns.append(Turn(turn["from"], turn["value"]))

    instruction = raw.get("instruction", "")
    if not isinstance(instruction, str):
        raise _fail(path, index_where, "instruction", "a string", instruction)

    label = raw["label"]
    if not isinstance(label, list) or not label or not all(isinstance(x, str) and x for x in label):
        raise _fail(path, index_where, "label", "a non-empty list of strings", label)

    choices = raw.get("choices")
    if category == MEMORY:
        if choices is not None and not isinstance(choices, dict):
            raise _fail(
                path, index_where, "choices", "an object or absent (open-ended memory question)", choices
            )
    else:
        if not isinstance(choices, dict) or len(choices) < 2:
            raise _fail(path, index_where, "choices", "an object with at least two options", choices)
        for letter, text in choices.items():
            if letter not in OPTION_LETTERS or not isinstance(text, str):
                raise _fail(
                    path, index_where, f"choices.{letter}", f"a letter in {OPTION_LETTERS} with text", text
                )
        if any(letter not in OPTION_LETTERS for letter in label):
            raise _fail(path, index_where, "label", f"option letters in {OPTION_LETTERS}", label)
        if any(letter not in choices for letter in label):
            # The published emotional_perception.json has one such item (zh humour, gold D of A-C); the
            # official harness keeps it, so do we: it is unanswerable except by the oracle.
            log.warning("%s: %s: gold %s not among the choices %s", path, index_where, label, sorted(choices))

    if category in PROFILE_CATEGORIES:
        name = meta.get("name")
        profile = meta.get("profile")
        if not isinstance(name, str) or not name:
            raise _fail(path, index_where, "meta.name", "the name of the role played", name)
        if not isinstance(profile, dict) or not all(isinstance(v, str) for v in profile.values()):
            raise _fail(path, index_where, "meta.profile", "an object role name -> profile text", profile)
        if category not in GROUP_CATEGORIES and name not in profile:
            raise _fail(
                path, index_where, "meta.profile", f"a profile for meta.name {name!r}", sorted(profile)
            )

    stem = stem if stem is not None else Path(str(path)).stem
    return Item(
        item_id=f"{stem}:{index}",
        category=category,
        lang=lang.lower(),
        dialogue=tuple(turns),
        instruction=instruction,
        choices=dict(choices) if isinstance(choices, dict) else None,
        label=tuple(label),
        meta=dict(meta),
    )


def _read(path: Path) -> str:
    """The file's text (UTF-8, a BOM dropped); missing or not UTF-8: a DataError naming the file (paperlab's
    reader; a missing file stays a ``FileNotFoundError`` too)."""
    try:
        return _read_text(path)
    except MissingFileError:
        raise
    except DataError as err:
        raise DataFormatError(str(err)) from None


def load_items(path: str | Path, limit: int | None = None) -> list[Item]:
    """Load and validate one benchmark file (``.json`` list or ``.jsonl``, as the official ``json_load``).

    A missing file, text that is not UTF-8 or not JSON, and a file without items are :class:`DataFormatError`
    naming the file; errors give the 1-based ``line`` of a JSONL file or ``item`` of a JSON list."""
    path = Path(path)
    text = _read(path)
    located: list[tuple[str, Any]] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+0085 / U+2028
            if line.strip():
                try:
                    located.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    hint = ""
                    if not located and line.lstrip().startswith("["):
                        hint = "; the file looks like a JSON array, JSONL holds one item per line"
                    raise DataFormatError(
                        f"{path}: line {number}: not valid JSON ({err.msg}, column {err.colno}){hint}"
                    ) from None
    elif text.strip():
        try:
            raw_items = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(
                f"{path}: line {err.lineno} column {err.colno}: not valid JSON ({err.msg})"
            ) from None
        if not isinstance(raw_items, list):
            raise _fail(path, None, "<top level>", "a JSON list of items", type(raw_items).__name__)
        located = [(f"item {i}", raw) for i, raw in enumerate(raw_items, start=1)]
    if not located:
        raise DataFormatError(f"{path}: no items (expected a JSON list of benchmark items, or one per line)")
    if limit is not None:
        located = located[:limit]
    return [parse_item(raw, i, path, where=where) for i, (where, raw) in enumerate(located)]


def load_benchmark(paths: Iterable[str | Path], limit: int | None = None) -> list[Item]:
    """Load several files; item ids stay unique because they carry the file stem."""
    items: list[Item] = []
    for p in paths:
        items.extend(load_items(p, limit=limit))
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        raise DataFormatError(
            f"two benchmark files share a file name stem: {sorted({i.split(':')[0] for i in ids})}"
        )
    return items


def fixture_dir() -> Path:
    """Hand-written fixtures in the published format for the three files not available here."""
    return Path(str(resources.files("roleinteract") / "fixtures"))


def fixture_paths() -> list[Path]:
    return sorted(fixture_dir().glob("*.json"))
