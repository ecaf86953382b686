"""One schema for every benchmark: sessions of (item, timestamp, behaviour) plus item and session side information.

Raw loaders (:mod:`sbr_side_info.loaders`) produce a :class:`RawDataset`; the common preprocessing
(:mod:`sbr_side_info.preprocess`) turns it into a :class:`Prepared` split with 1-based item ids, prefix-augmented
``(sequence, next item)`` cases and side-information tables aligned to the new ids (0 = padding everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paperlab.io import DataError

BEHAVIOURS = ("view", "click", "cart", "fav", "buy")  # micro-behaviour vocabulary; index 0 of ops is padding


class DataFormatError(DataError):
    """A data file does not have the expected format; the message names the file, line and column."""


@dataclass
class Session:
    """One session in time order. ``times`` are Unix seconds (or a monotone surrogate where the data has none);
    ``date`` is the session's time for the train/test split (Diginetica: the day of its last row, as SR-GNN)."""

    session_id: str
    items: list[str]
    times: list[float]
    behaviours: list[str]
    date: float | None = None  # the time the split uses; None = the last event's time

    def __post_init__(self) -> None:
        if not (len(self.items) == len(self.times) == len(self.behaviours)):
            raise ValueError(f"session {self.session_id}: items, times and behaviours differ in length")


@dataclass
class RawDataset:
    """Sessions with raw (string) item ids and side information keyed by raw id.

    item_side: raw item id -> ``{"category": str, "brand": str, "price": float, "text": str}`` (any subset).
    session_side: session id -> e.g. ``{"user": str}``.
    """

    name: str
    sessions: list[Session]
    item_side: dict[str, dict[str, Any]] = field(default_factory=dict)
    session_side: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def n_clicks(self) -> int:
        return sum(len(s.items) for s in self.sessions)

    @property
    def n_items(self) -> int:
        return len({i for s in self.sessions for i in s.items})


@dataclass
class Cases:
    """Prefix-augmented cases: ``seqs[i]`` (1-based item ids, oldest first) is followed by ``labels[i]``.
    ``ops[i]`` are the behaviour indices of ``seqs[i]`` (1-based into :data:`BEHAVIOURS`) or ``None``."""

    seqs: list[list[int]]
    labels: list[int]
    ops: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: list[int]) -> Cases:
        return Cases(
            [self.seqs[i] for i in index],
            [self.labels[i] for i in index],
            None if self.ops is None else [self.ops[i] for i in index],
        )


@dataclass
class Prepared:
    """A dataset ready for training: ``n_items`` counts the padding id 0 (ids run 1..n_items-1).

    item_category / item_price_level: per new item id (index 0 = padding) a category index (1-based; 0 unknown)
    and a price level (1..price_levels; 0 unknown); ``None`` when the data has no such side information.
    """

    name: str
    train: Cases
    valid: Cases
    test: Cases
    n_items: int
    item_category: list[int] | None = None
    n_categories: int = 0
    item_price_level: list[int] | None = None
    price_levels: int = 0
    n_ops: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
