"""Scoring as the official code does it (X-PLUG/SocialBench ``dataset.py``: ``format_predict``, ``compute_score``),
and the paper's columns.

Answer extraction: every capital option letter A-H that stands on its own — bounded by a word boundary,
non-word characters, the start or end of the text, or CJK characters, or glued to another letter A-D (so
``"AC"`` reads as A and C) — in order of appearance, without repeats. Lower-case letters are not answers.

Item score (the paper's Sec. 4 metrics):
- single choice (one gold letter): 1 if the *first* extracted letter is the gold one, else 0;
- multiple choice: 0 if any extracted letter is wrong, else |extracted| / |gold| (partial credit for a correct
  subset);
- open-ended memory questions: keyword recall, the fraction of gold keywords found (case-insensitively) in
  the reply;
- no letter found (or an empty reply to a memory question): ``None`` — unparseable, as in the official code.

The official code stops at ``None``; how a run counts it is :class:`ScoreConfig.unparsed` (default ``"zero"``:
an unparseable answer is a wrong answer). Column scores are means x 100; ``Avg`` is the mean of the nine columns
(it reproduces the published ``Avg`` from the published columns; tested).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from paperlab.config import require
from roleinteract.data import (
    EP_EMOTION,
    EP_HUMOR,
    EP_SITUATION,
    MEMORY,
    SA_KNOWLEDGE,
    SA_STYLE,
    SP_NEGATIVE,
    SP_NEUTRAL,
    SP_POSITIVE,
    Item,
)

_CJK = "[\u4e00-\u9fa5]+"
_BEFORE = rf"(?:\b|\W+|^|{_CJK}|(?<=[A-D]))"
_AFTER = rf"(?:\b|(?=[A-D])|$|\W+|{_CJK})"
_ANSWER = re.compile(_BEFORE + "([A-H])" + _AFTER)

# The paper's table columns (Table 2/3 of the paper; README "Experimental Results"), in order.
INDIVIDUAL_COLUMNS = ("SA Style", "SA Know", "EP Situ.", "EP Emo.", "CM Short", "CM Long")
GROUP_COLUMNS = ("SP Pos.", "SP Neu.", "SP Neg.")
PAPER_COLUMNS = (*INDIVIDUAL_COLUMNS, *GROUP_COLUMNS)

CATEGORY_COLUMN = {
    SA_STYLE: "SA Style",
    SA_KNOWLEDGE: "SA Know",
    EP_SITUATION: "EP Situ.",
    EP_EMOTION: "EP Emo.",
    EP_HUMOR: "EP Emo.",
    SP_POSITIVE: "SP Pos.",
    SP_NEUTRAL: "SP Neu.",
    SP_NEGATIVE: "SP Neg.",
}


@dataclass
class ScoreConfig:
    """How item scores become the table.

    unparsed: ``"zero"`` counts an unparseable answer as 0; ``"skip"`` leaves it out of the mean.
    memory_long_min_turns: a memory question whose dialogue has at least this many utterances is ``CM Long``,
        else ``CM Short`` (the released files do not mark the split; an item's ``meta.memory`` = ``"short"`` or
        ``"long"`` wins when present). Our choice: neither the official ``dataset.py`` (X-PLUG/SocialBench at
        1287b67) nor its README defines the split.
    humor_column: the column of the humour / sarcasm detection questions. Our choice, ``"EP Emo."``: the
        official code maps no category to a column, and its README lists only "Situational Understanding (EP
        Situ.)" and "Emotional Detection (EP Emo.)" under emotional perception; its ``format_prompt`` gives
        humour / sarcasm the prompt of situation understanding, so ``"EP Situ."`` is the other reading.
    """

    unparsed: str = "zero"
    memory_long_min_turns: int = 40
    humor_column: str = "EP Emo."

    def __post_init__(self) -> None:
        require(self.unparsed in ("zero", "skip"), "unparsed", self.unparsed, "'zero' or 'skip'")
        require(self.memory_long_min_turns >= 1, "memory_long_min_turns", self.memory_long_min_turns, ">= 1")
        require(
            self.humor_column in ("EP Emo.", "EP Situ."),
            "humor_column",
            self.humor_column,
            "EP Emo. or EP Situ.",
        )


def extract_options(reply: str | None) -> list[str]:
    """Option letters in ``reply``, first appearance first (official ``format_predict``)."""
    if reply is None:
        return []
    found: list[str] = []
    for letter in _ANSWER.findall(reply):
        if letter not in found:
            found.append(letter)
    return found


def keyword_recall(reply: str | None, keywords: Sequence[str]) -> float | None:
    """Fraction of ``keywords`` that occur in ``reply`` (case-insensitive); ``None`` for an empty reply."""
    if not reply:
        return None
    text = reply.lower()
    return sum(1 for k in keywords if k.lower() in text) / len(keywords)


def score_reply(reply: str | None, item: Item) -> float | None:
    """One item's score in [0, 1], or ``None`` when the reply holds no answer (official ``compute_score``)."""
    if item.category == MEMORY:
        return keyword_recall(reply, item.label)
    answers = extract_options(reply)
    if not answers:
        return None
    if len(item.label) == 1:
        return 1.0 if answers[0] == item.label[0] else 0.0
    if any(a not in item.label for a in answers):
        return 0.0
    return len(set(answers)) / len(set(item.label))


def column_of(item: Item, cfg: ScoreConfig) -> str:
    """The paper column an item counts in."""
    if item.category == MEMORY:
        marked = item.meta.get("memory")
        if marked in ("short", "long"):
            return "CM Short" if marked == "short" else "CM Long"
        return "CM Long" if len(item.dialogue) >= cfg.memory_long_min_turns else "CM Short"
    if item.category == EP_HUMOR:
        return cfg.humor_column
    return CATEGORY_COLUMN[item.category]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _counted(score: float | None, cfg: ScoreConfig) -> float | None:
    if score is None:
        return 0.0 if cfg.unparsed == "zero" else None
    return score


def aggregate(items: Sequence[Item], scores: Mapping[str, float | None], cfg: ScoreConfig) -> dict:
    """Per-column, per-level, per-category scores (x 100) of one model.

    ``scores`` maps item id -> item score (``None`` = unparseable). Returns ``{"columns": {col: score|None},
    "Avg", "Individual", "Group", "categories": {"<category>/<lang>": {n, score, unparsed}}, "n", "unparsed"}``.
    Columns without items are ``None`` and left out of the averages.
    """
    per_column: dict[str, list[float]] = {c: [] for c in PAPER_COLUMNS}
    per_category: dict[str, dict] = {}
    unparsed = 0
    for item in items:
        raw = scores[item.item_id]
        unparsed += raw is None
        cat = per_category.setdefault(f"{item.category}/{item.lang}", {"n": 0, "values": [], "unparsed": 0})
        cat["n"] += 1
        cat["unparsed"] += raw is None
        value = _counted(raw, cfg)
        if value is not None:
            per_column[column_of(item, cfg)].append(value)
            cat["values"].append(value)
    columns = {c: (None if not v else 100.0 * sum(v) / len(v)) for c, v in per_column.items()}
    present = [v for v in columns.values() if v is not None]
    individual = [columns[c] for c in INDIVIDUAL_COLUMNS if columns[c] is not None]
    group = [columns[c] for c in GROUP_COLUMNS if columns[c] is not None]
    categories = {
        key: {
            "n": c["n"],
            "score": None if not c["values"] else 100.0 * sum(c["values"]) / len(c["values"]),
            "unparsed": c["unparsed"],
        }
        for key, c in sorted(per_category.items())
    }
    return {
        "columns": columns,
        "Avg": _mean(present),
        "Individual": _mean(individual),
        "Group": _mean(group),
        "categories": categories,
        "n": len(items),
        "unparsed": unparsed,
    }


def expected_random_score(item: Item) -> float:
    """The analytic expected score of the ``random`` backend on ``item``.

    Choice items: the backend names one option uniformly, so a single-choice item scores 1/n; a multiple-choice
    item with k gold letters scores 1/k with probability k/n, again 1/n (a gold letter missing from the options,
    as in one published item, cannot be drawn and lowers this). Memory items: the backend repeats one
    utterance of the dialogue chosen uniformly, so the expectation is the mean keyword recall of the utterances
    (an empty utterance scores 0).
    """
    if item.category == MEMORY:
        recalls = [keyword_recall(turn.text, item.label) or 0.0 for turn in item.dialogue]
        return sum(recalls) / len(recalls)
    choices = item.choices or {}
    reachable = sum(1 for letter in set(item.label) if letter in choices)
    return reachable / (len(choices) * len(set(item.label)))


def expected_random_columns(items: Sequence[Item], cfg: ScoreConfig) -> dict[str, float | None]:
    """Per-column chance level (x 100) of the ``random`` backend, from option counts."""
    per_column: dict[str, list[float]] = {c: [] for c in PAPER_COLUMNS}
    for item in items:
        per_column[column_of(item, cfg)].append(expected_random_score(item))
    return {c: (None if not v else 100.0 * sum(v) / len(v)) for c, v in per_column.items()}
