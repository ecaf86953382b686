"""The common protocol on a hand-made data set, price levels, the prepared-split cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperlab.config import ConfigError
from sbr_side_info.preprocess import (
    ProtocolConfig,
    load_prepared,
    prepare,
    price_levels_by_category,
    save_prepared,
)
from sbr_side_info.schema import DataFormatError, RawDataset, Session

DAY = 86400.0


def _raw() -> RawDataset:
    sessions = [
        Session("a", ["x", "y", "z"], [0, 1, 2], ["view", "view", "buy"]),
        Session("b", ["y", "x"], [DAY, DAY + 1], ["view", "cart"]),
        Session("c", ["x"], [2 * DAY], ["view"]),  # length 1: dropped
        Session(
            "d", ["x", "rare", "y"], [3 * DAY, 3 * DAY + 1, 3 * DAY + 2], ["view"] * 3
        ),  # 'rare' seen once
        Session("e", ["y", "z", "x"], [4 * DAY, 4 * DAY + 1, 4 * DAY + 2], ["view"] * 3),
        Session("t1", ["z", "x", "new"], [20 * DAY, 20 * DAY + 1, 20 * DAY + 2], ["view"] * 3),  # test
        Session(
            "t2", ["new", "z"], [20 * DAY, 20 * DAY + 1], ["view"] * 2
        ),  # test, 1 known item left: dropped
    ]
    side = {
        "x": {"category": "A", "price": 1.0},
        "y": {"category": "A", "price": 5.0},
        "z": {"category": "B", "price": 2.0},
    }
    return RawDataset("toy", sessions, side)


def test_protocol_by_hand() -> None:
    cfg = ProtocolConfig(min_item_count=2, test_days=7, valid_portion=0.0)
    data = prepare(_raw(), cfg)
    # items renumbered by first appearance in time-ordered training sessions: x=1, y=2, z=3
    assert data.n_items == 4
    # a: x y z -> (x y, z), (x, y); b: y x -> (y, x); d: x [rare] y -> (x, y); e: y z x -> (y z, x), (y, z)
    assert data.train.seqs == [[1, 2], [1], [2], [1], [2, 3], [2]]
    assert data.train.labels == [3, 2, 1, 2, 1, 3]
    assert data.test.seqs == [[3]] and data.test.labels == [1]  # 'new' unseen in training: removed
    assert data.stats["train_sessions"] == 4 and data.stats["test_sessions"] == 1
    assert data.item_category == [0, 1, 1, 2]
    assert data.train.ops[0] == [1, 1]  # view, view (1-based behaviour ids)
    assert data.n_ops > 0 and data.stats["behaviours"] == ["buy", "cart", "view"]


def test_train_fraction_keeps_the_most_recent_cases() -> None:
    full = prepare(_raw(), ProtocolConfig(min_item_count=2, valid_portion=0.0))
    half = prepare(_raw(), ProtocolConfig(min_item_count=2, valid_portion=0.0, train_fraction=0.5))
    assert half.train.labels == full.train.labels[-len(half.train) :]
    assert len(half.train) == int(len(full.train) * 0.5)


def test_price_levels_within_category() -> None:
    prices = {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 1.0}
    cats = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2}
    assert price_levels_by_category(prices, cats, levels=2) == {1: 1, 2: 1, 3: 2, 4: 2, 5: 1}


def test_prepared_cache_round_trip(tmp_path: Path) -> None:
    data = prepare(_raw(), ProtocolConfig(min_item_count=2))
    back = load_prepared(save_prepared(data, tmp_path / "p.json"))
    assert back == data


def test_bad_protocol_and_empty_result() -> None:
    with pytest.raises(ConfigError, match="train_fraction"):
        ProtocolConfig(train_fraction=0)
    with pytest.raises(DataFormatError, match=r"toy: no session of 2\+ items survives"):
        prepare(_raw(), ProtocolConfig(min_item_count=50))
    with pytest.raises(DataFormatError, match=r"toy: the time split \(test_days=10000.0\) leaves 0 training"):
        prepare(_raw(), ProtocolConfig(min_item_count=1, test_days=10000.0))
