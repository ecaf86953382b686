"""Items in the published format, built in code: for tests, benchmarks and trying the harness without data.

:func:`raw_item` is one item exactly as the published files hold it; :func:`synthetic_items` a benchmark over all
nine categories with 2-6 options, single and multiple gold letters, gold skewed towards ``A`` (so a backend that
is not uniform over the options misses the analytic chance level) and memory items whose utterances hold some
of the keywords.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from roleinteract.data import (
    CATEGORIES,
    GROUP_CATEGORIES,
    MEMORY,
    PROFILE_CATEGORIES,
    Item,
    load_items,
)


def raw_item(
    category: str = "Individual-SA-RoleStyle",
    lang: str = "en",
    label: list[str] | None = None,
    n_choices: int = 4,
    turns: int = 2,
) -> dict[str, Any]:
    """One item exactly in the published layout (benchmark README, "Data Structure")."""
    letters = "ABCDEFGH"[:n_choices]
    item: dict[str, Any] = {
        "dialogue": [
            {"from": "User" if t % 2 == 0 else "Bob", "value": f"utterance {t} about walnut"}
            for t in range(turns)
        ],
        "instruction": "",
        "label": label if label is not None else ["A"],
        "meta": {"category": category, "lang": lang},
    }
    if category != MEMORY:
        item["choices"] = {letter: f"option text {letter}" for letter in letters}
    if category in PROFILE_CATEGORIES:
        item["meta"]["name"] = "Bob"
        item["meta"]["profile"] = {"Bob": "Bob is a baker.\nHe likes walnuts."}
        if category in GROUP_CATEGORIES:
            item["meta"]["profile"]["Alice"] = "Alice is a pilot."
    return item


def write_items(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


def synthetic_items(folder: Path, per_category: int = 300, seed: int = 0) -> list[Item]:
    """``per_category`` items of every category, written to ``folder/synthetic.json`` and loaded back."""
    rng = random.Random(seed)
    raw = []
    for category in CATEGORIES:
        for _ in range(per_category):
            if category == MEMORY:
                item = raw_item(category, turns=rng.randint(2, 60), label=["walnut", "Porto"])
                for turn in item["dialogue"]:
                    turn["value"] = rng.choice(["nothing here", "a walnut", "walnut from Porto", "porto"])
            else:
                n = rng.randint(2, 6)
                letters = "ABCDEF"[:n]
                k = 1 if rng.random() < 0.6 else rng.randint(1, n)
                gold = ["A"] if (k == 1 and rng.random() < 0.7) else sorted(rng.sample(letters, k))
                item = raw_item(category, lang=rng.choice(["en", "zh"]), label=gold, n_choices=n)
            raw.append(item)
    return load_items(write_items(Path(folder) / "synthetic.json", raw))
