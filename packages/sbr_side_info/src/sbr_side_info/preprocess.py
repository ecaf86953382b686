"""The common preprocessing protocol (SR-GNN, Wu et al. AAAI 2019, Sec. 4.1 and its ``preprocess.py``), for every
raw data set, and the side-information tables.

1. Drop sessions of length 1, then items seen fewer than ``min_item_count`` (5) times, then sessions that became
   shorter than 2.
2. Split by time: sessions whose last event is in the final ``test_days`` (7 for Diginetica, 1 for YooChoose) are the
   test set, the rest train.
3. Re-index items 1..N in order of first appearance in the (time-ordered) training sessions; drop test items
   unseen in training and test sessions that became shorter than 2.
4. Prefix augmentation of both sides; optionally keep the most recent ``train_fraction`` of the training cases
   (YooChoose 1/64, 1/4); hold out a random ``valid_portion`` of training cases for early stopping.

Side information: categories become indices 1..C (0 = unknown); prices become ``price_levels`` levels per
category by their rank within the category (CoHHN, Zhang et al. SIGIR 2022, Sec. 3.1 discretises price within
each category; it fits a logistic distribution, we use rank quantiles, which is the same ordering).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from paperlab.config import require
from paperlab.io import DataError, MissingFileError, atomic_write_text, read_json
from sbr_side_info.schema import BEHAVIOURS, Cases, DataFormatError, Prepared, RawDataset


@dataclass
class ProtocolConfig:
    min_item_count: int = 5
    min_session_length: int = 2
    test_days: float = 7.0
    train_fraction: float = 1.0  # YooChoose 1/64 = 0.015625: the most recent training cases
    valid_portion: float = 0.1
    price_levels: int = 10
    max_length: int | None = None  # keep the last max_length items of a prefix (None = all, as SR-GNN)
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.min_item_count >= 1, "min_item_count", self.min_item_count, ">= 1")
        require(self.min_session_length >= 2, "min_session_length", self.min_session_length, ">= 2")
        require(self.test_days > 0, "test_days", self.test_days, "> 0 days")
        require(0 < self.train_fraction <= 1, "train_fraction", self.train_fraction, "in (0, 1]")
        require(0 <= self.valid_portion < 1, "valid_portion", self.valid_portion, "in [0, 1)")
        require(self.price_levels >= 1, "price_levels", self.price_levels, ">= 1")


def _augment(sessions: list[tuple[list[int], list[int]]], max_length: int | None) -> Cases:
    seqs, labels, ops = [], [], []
    for items, behaviours in sessions:
        for cut in range(len(items) - 1, 0, -1):
            start = 0 if max_length is None else max(0, cut - max_length)
            seqs.append(items[start:cut])
            ops.append(behaviours[start:cut])
            labels.append(items[cut])
    return Cases(seqs, labels, ops)


def price_levels_by_category(
    prices: dict[int, float], categories: dict[int, int], levels: int
) -> dict[int, int]:
    """Item -> price level 1..levels by the price's rank quantile within its category."""
    by_cat: dict[int, list[tuple[float, int]]] = {}
    for item, price in prices.items():
        by_cat.setdefault(categories.get(item, 0), []).append((price, item))
    out = {}
    for members in by_cat.values():
        members.sort()
        n = len(members)
        for rank, (_, item) in enumerate(members):
            out[item] = 1 + min(levels - 1, rank * levels // n)
    return out


def prepare(raw: RawDataset, cfg: ProtocolConfig | None = None) -> Prepared:
    """Apply the protocol to ``raw``; see the module docstring."""
    cfg = cfg or ProtocolConfig()
    sessions = [s for s in raw.sessions if len(s.items) >= 2]
    counts = Counter(i for s in sessions for i in s.items)
    kept = []
    for s in sessions:
        keep = [j for j, item in enumerate(s.items) if counts[item] >= cfg.min_item_count]
        if len(keep) >= cfg.min_session_length:
            kept.append(
                (
                    s.date if s.date is not None else max(s.times),
                    [s.items[j] for j in keep],
                    [s.behaviours[j] for j in keep],
                )
            )
    if not kept:
        raise DataFormatError(
            f"{raw.name}: no session of {cfg.min_session_length}+ items survives the protocol "
            f"(min_item_count={cfg.min_item_count}, {len(raw.sessions)} raw sessions): expected more data"
        )
    kept.sort(key=lambda x: x[0])
    split_time = kept[-1][0] - cfg.test_days * 86400.0
    train_raw = [k for k in kept if k[0] < split_time]
    test_raw = [k for k in kept if k[0] > split_time]
    ids: dict[str, int] = {}
    op_index = {b: i + 1 for i, b in enumerate(BEHAVIOURS)}
    train_sessions = []
    for _, items, behaviours in train_raw:
        for item in items:
            ids.setdefault(item, len(ids) + 1)
        train_sessions.append(([ids[i] for i in items], [op_index.get(b, 1) for b in behaviours]))
    test_sessions = []
    for _, items, behaviours in test_raw:
        pairs = [(ids[i], op_index.get(b, 1)) for i, b in zip(items, behaviours, strict=True) if i in ids]
        if len(pairs) >= 2:
            test_sessions.append(([p[0] for p in pairs], [p[1] for p in pairs]))

    if not train_sessions or not test_sessions:
        raise DataFormatError(
            f"{raw.name}: the time split (test_days={cfg.test_days}) leaves {len(train_sessions)} training and "
            f"{len(test_sessions)} test sessions: expected sessions on both sides (data spanning more than "
            f"test_days, test items seen in training)"
        )
    train_all = _augment(train_sessions, cfg.max_length)
    if cfg.train_fraction < 1:  # SR-GNN keeps the most recent fraction of the (time-ordered) training cases
        start = len(train_all) - int(len(train_all) * cfg.train_fraction)
        train_all = train_all.subset(list(range(start, len(train_all))))
    order = list(range(len(train_all)))
    random.Random(cfg.seed).shuffle(order)
    n_valid = round(len(order) * cfg.valid_portion)
    valid = train_all.subset(sorted(order[:n_valid]))
    train = train_all.subset(sorted(order[n_valid:]))
    test = _augment(test_sessions, cfg.max_length)

    n_items = len(ids) + 1
    item_category = item_price = None
    n_categories = 0
    cat_ids: dict[str, int] = {}
    cats: dict[int, int] = {}
    prices: dict[int, float] = {}
    for raw_id, new in ids.items():
        side = raw.item_side.get(raw_id, {})
        if side.get("category") is not None:
            cats[new] = cat_ids.setdefault(str(side["category"]), len(cat_ids) + 1)
        if side.get("price") is not None:
            prices[new] = float(side["price"])
    if cats:
        n_categories = len(cat_ids) + 1
        item_category = [cats.get(i, 0) for i in range(n_items)]
    if prices:
        levels = price_levels_by_category(prices, cats, cfg.price_levels)
        item_price = [levels.get(i, 0) for i in range(n_items)]
    used_ops = {o for _, b in train_sessions for o in b}
    stats = {
        "clicks": raw.n_clicks,
        "raw_sessions": len(raw.sessions),
        "train_sessions": len(train_sessions),
        "test_sessions": len(test_sessions),
        "items": n_items - 1,
        "train_cases": len(train) + len(valid),
        "test_cases": len(test),
        "avg_length": sum(len(s[0]) for s in train_sessions + test_sessions)
        / max(1, len(train_sessions) + len(test_sessions)),
        "items_with_category": len(cats),
        "items_with_price": len(prices),
        "behaviours": sorted(BEHAVIOURS[o - 1] for o in used_ops),
    }
    return Prepared(
        name=raw.name,
        train=train,
        valid=valid,
        test=test,
        n_items=n_items,
        item_category=item_category,
        n_categories=n_categories,
        item_price_level=item_price,
        price_levels=cfg.price_levels if prices else 0,
        n_ops=len(BEHAVIOURS) + 1 if len(used_ops) > 1 else 0,
        stats=stats,
    )


# ---------------------------------------------------------------------------------------- disk cache


def save_prepared(data: Prepared, path: str | Path) -> Path:
    """Atomic JSON of a prepared split (the cache the make targets reuse)."""
    return atomic_write_text(path, json.dumps(asdict(data), separators=(",", ":")))


def load_prepared(path: str | Path) -> Prepared:
    """What :func:`save_prepared` wrote; a file that is not such a split is a :class:`DataFormatError`."""
    try:
        raw = read_json(path)
    except MissingFileError:
        raise
    except DataError as err:
        raise DataFormatError(str(err)) from None
    try:
        for key in ("train", "valid", "test"):
            raw[key] = Cases(**raw[key])
        data = Prepared(**raw)
        for key in ("train", "valid", "test"):
            cases = getattr(data, key)
            if not (isinstance(cases.seqs, list) and isinstance(cases.labels, list)) or len(
                cases.seqs
            ) != len(cases.labels):
                raise ValueError(f"{key}: sequences and labels differ in length")
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise DataFormatError(f"{path}: not a prepared split ({type(err).__name__}: {err})") from None
    return data
