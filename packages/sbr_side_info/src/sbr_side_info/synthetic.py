"""A side-information generator: synthetic sessions whose next item is driven by category and price transitions,
with a knob for ID sparsity, to show *when* side information helps (the survey's Sec. 6 question).

Each item has a category and a price level; the cell (category, price level) holds ``items_per_cell`` items.
A session starts in a random cell and moves on as follows:
- behaviour: with probability ``p_cart`` the user puts the current item in the cart (``cart``) and the next item
  stays in the same category (a substitute); otherwise (``view``) the category moves by a fixed sparse transition
  matrix: to the category's first successor with ``p_first``, its second otherwise;
- price level: kept with ``p_keep_price``, else one level up or down;
- item: uniform within the new cell.
The best possible HR@20 is therefore bounded by category, price and behaviour, never by item identity, so ID
sparsity (``items_per_cell`` large vs the number of sessions) hurts ID-only models and not the side-information
ones; with few items per cell (dense) the IDs alone carry the same information.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from paperlab.config import require
from sbr_side_info.preprocess import ProtocolConfig, prepare
from sbr_side_info.schema import Prepared, RawDataset, Session


@dataclass
class SyntheticConfig:
    n_sessions: int = 3000
    n_categories: int = 12
    price_levels: int = 4
    items_per_cell: int = 20  # the ID-sparsity knob: items per (category, price level)
    min_length: int = 3
    max_length: int = 8
    p_cart: float = 0.3
    p_first: float = 0.8
    p_keep_price: float = 0.8
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.n_sessions >= 10, "n_sessions", self.n_sessions, ">= 10")
        require(self.n_categories >= 3, "n_categories", self.n_categories, ">= 3")
        require(self.price_levels >= 1, "price_levels", self.price_levels, ">= 1")
        require(self.items_per_cell >= 1, "items_per_cell", self.items_per_cell, ">= 1")
        require(
            2 <= self.min_length <= self.max_length,
            "min_length",
            self.min_length,
            "2 <= min_length <= max_length",
        )
        for name in ("p_cart", "p_first", "p_keep_price"):
            require(0 <= getattr(self, name) <= 1, name, getattr(self, name), "a probability")
        require(0 < self.test_fraction < 1, "test_fraction", self.test_fraction, "in (0, 1)")

    @property
    def n_items(self) -> int:
        return self.n_categories * self.price_levels * self.items_per_cell


def generate(cfg: SyntheticConfig) -> RawDataset:
    """Sessions one hour apart (so the protocol's time split takes the last ``test_fraction`` as test)."""
    rng = random.Random(cfg.seed)
    cats = list(range(cfg.n_categories))
    successors = {c: rng.sample([d for d in cats if d != c], 2) for c in cats}

    def item_of(cat: int, level: int) -> str:
        return f"c{cat}p{level}i{rng.randrange(cfg.items_per_cell)}"

    item_side = {}
    for c in cats:
        for level in range(cfg.price_levels):
            for i in range(cfg.items_per_cell):
                price = 10.0 * 2**level * (1.0 + (i + 0.5) / cfg.items_per_cell)
                item_side[f"c{c}p{level}i{i}"] = {"category": f"cat{c}", "price": price}
    sessions = []
    for s in range(cfg.n_sessions):
        cat, level = rng.choice(cats), rng.randrange(cfg.price_levels)
        items, behaviours = [], []
        for _ in range(rng.randint(cfg.min_length, cfg.max_length)):
            items.append(item_of(cat, level))
            cart = rng.random() < cfg.p_cart
            behaviours.append("cart" if cart else "view")
            if not cart:
                first, second = successors[cat]
                cat = first if rng.random() < cfg.p_first else second
            if rng.random() >= cfg.p_keep_price:
                level = min(cfg.price_levels - 1, max(0, level + rng.choice((-1, 1))))
        t0 = 3600.0 * s
        sessions.append(Session(str(s), items, [t0 + k for k in range(len(items))], behaviours))
    return RawDataset("synthetic", sessions, item_side)


def synthetic_prepared(cfg: SyntheticConfig) -> Prepared:
    """Generated sessions through the common protocol (no item-count filter: sparsity is the point)."""
    raw = generate(cfg)
    test_days = cfg.test_fraction * cfg.n_sessions / 24.0
    return prepare(
        raw,
        ProtocolConfig(min_item_count=1, test_days=test_days, price_levels=cfg.price_levels, seed=cfg.seed),
    )
