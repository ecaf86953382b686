"""Sparsified copies for the side-information study on real data (issue 31, item 4)."""

from __future__ import annotations

import pytest

from sbr_side_info.schema import RawDataset, Session
from sbr_side_info.sparsity import sparsify_item_ids

DAY = 86400.0


def _raw() -> RawDataset:
    # item "a" in 10 training sessions, "b" in 4; the last session (day 20) is in the 2-day test period
    sessions = [
        Session(
            f"s{i}",
            ["a", "b", "c"] if i < 4 else ["a", "c"],
            [i * DAY] * (3 if i < 4 else 2),
            ["view"] * (3 if i < 4 else 2),
        )
        for i in range(10)
    ]
    sessions.append(Session("test", ["a", "b"], [20 * DAY, 20 * DAY], ["view", "view"]))
    return RawDataset("toy", sessions, {"a": {"category": "x"}})


def test_each_item_kept_in_its_fraction_of_training_sessions() -> None:
    out = sparsify_item_ids(_raw(), 0.3, test_days=2.0, seed=0)
    train = [s for s in out.sessions if s.session_id != "test"]
    assert sum("a" in s.items for s in train) == 3  # ceil(0.3 * 10)
    assert sum("b" in s.items for s in train) == 2  # ceil(0.3 * 4)
    assert sum("c" in s.items for s in train) == 3
    test = next(s for s in out.sessions if s.session_id == "test")
    assert test.items == ["a", "b"]  # the test period is untouched
    assert out.item_side == {"a": {"category": "x"}}  # attributes stay
    assert sparsify_item_ids(_raw(), 1.0, test_days=2.0).sessions == _raw().sessions


def test_bad_fraction_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_fraction"):
        sparsify_item_ids(_raw(), 0.0, test_days=2.0)
