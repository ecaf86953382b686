"""AIHF's losses against numbers worked by hand, and its reductions to DPO, SPIN and the RLHF reward loss."""

from __future__ import annotations

import math

import pytest
import torch

from aihf.losses import (
    PairLogps,
    dpo_loss,
    explicit_reward_loss,
    implicit_loss,
    implicit_pair_loss,
    sequence_logps,
)


def _pairs(c, r, rc, rr) -> PairLogps:
    return PairLogps(*(torch.tensor(v, dtype=torch.float64) for v in (c, r, rc, rr)))


def _nls(x: float) -> float:  # -log sigmoid(x)
    return math.log1p(math.exp(-x))


# a 2-example batch: margins (-1 - -3) - (-2 - -2) = 2 and (-4 - -4) - (-1 - -2) = -1
PREF = _pairs([-1.0, -4.0], [-2.0, -1.0], [-3.0, -4.0], [-2.0, -2.0])
# demonstration pairs: margins (-2 - -1) - (-3 - -3) = -1 and (-1 - -2) - (-5 - -4) = 2
DEMO = _pairs([-2.0, -1.0], [-3.0, -5.0], [-1.0, -2.0], [-3.0, -4.0])


def test_dpo_and_demo_terms_by_hand() -> None:
    beta = 0.5
    assert PREF.margin().tolist() == [2.0, -1.0]
    assert float(dpo_loss(PREF, beta)) == pytest.approx((_nls(1.0) + _nls(-0.5)) / 2, abs=1e-12)
    loss, parts = implicit_loss(DEMO, PREF, beta, w_demo=2.0, w_pref=1.0)
    demo = (_nls(-0.5) + _nls(1.0)) / 2
    pref = (_nls(1.0) + _nls(-0.5)) / 2
    assert float(loss) == pytest.approx(2.0 * demo + pref, abs=1e-12)
    assert parts == pytest.approx({"demo": demo, "pref": pref})
    linear, _ = implicit_loss(DEMO, None, beta, w_demo=1 / beta, w_pref=0.0, demo_form="linear")
    assert float(linear) == pytest.approx(-(-1.0 + 2.0) / 2, abs=1e-12)  # = -mean margin when w_demo = 1/beta


def test_reductions() -> None:
    beta = 0.1
    only_pref, _ = implicit_loss(DEMO, PREF, beta, w_demo=0.0, w_pref=1.0)
    assert float(only_pref) == pytest.approx(float(dpo_loss(PREF, beta)), abs=1e-12)
    only_demo, _ = implicit_loss(DEMO, PREF, beta, w_demo=1.0, w_pref=0.0)
    spin = -torch.nn.functional.logsigmoid(beta * DEMO.margin()).mean()  # SPIN's loss on (demo, own sample)
    assert float(only_demo) == pytest.approx(float(spin), abs=1e-12)
    r_c, r_r = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    rm = explicit_reward_loss(None, None, r_c, r_r, w_demo=0.0, w_pref=1.0)
    assert float(rm) == pytest.approx((_nls(1.0) + _nls(-2.0)) / 2, abs=1e-6)  # RLHF reward-model loss
    both = explicit_reward_loss(torch.tensor([3.0]), torch.tensor([1.0]), r_c, r_r, w_demo=0.5, w_pref=1.0)
    assert float(both) == pytest.approx((0.5 * _nls(2.0) + _nls(1.0) + _nls(-2.0)) / 3, abs=1e-6)


def test_pair_weighted_implicit_loss_by_hand() -> None:
    """Three pairs: two demonstration pairs (margins -1, 2) and one preference pair (margin 2), beta 0.5, w_demo 2,
    w_pref 1: mean over pairs of w_i * l_i; per-kind means (implicit_loss) give another number."""
    beta = 0.5
    pairs = _pairs([-2.0, -1.0, -1.0], [-3.0, -5.0, -2.0], [-1.0, -2.0, -3.0], [-3.0, -4.0, -2.0])
    assert pairs.margin().tolist() == [-1.0, 2.0, 2.0]
    is_demo = torch.tensor([True, True, False])
    linear, parts = implicit_pair_loss(pairs, is_demo, beta, w_demo=2.0, w_pref=1.0, demo_form="linear")
    assert float(linear) == pytest.approx((2.0 * (0.5 - 1.0) + _nls(1.0)) / 3, abs=1e-12)
    assert parts == pytest.approx({"demo": (0.5 - 1.0) / 2, "pref": _nls(1.0)})
    logistic, _ = implicit_pair_loss(pairs, is_demo, beta, w_demo=2.0, w_pref=1.0, demo_form="logistic")
    assert float(logistic) == pytest.approx((2.0 * (_nls(-0.5) + _nls(1.0)) + _nls(1.0)) / 3, abs=1e-12)
    per_kind, _ = implicit_loss(DEMO, _pairs([-1.0], [-2.0], [-3.0], [-2.0]), beta, w_demo=2.0, w_pref=1.0)
    assert abs(float(per_kind) - float(logistic)) > 0.3
    # the same weighting as explicit_reward_loss on rewards r = beta * logratio
    r = lambda c, ref: beta * (c - ref)  # noqa: E731
    explicit = explicit_reward_loss(
        r(pairs.chosen[:2], pairs.ref_chosen[:2]),
        r(pairs.rejected[:2], pairs.ref_rejected[:2]),
        r(pairs.chosen[2:], pairs.ref_chosen[2:]),
        r(pairs.rejected[2:], pairs.ref_rejected[2:]),
        w_demo=2.0,
        w_pref=1.0,
        demo_form="logistic",
    )
    assert float(explicit) == pytest.approx(float(logistic), abs=1e-12)
    only_pref, _ = implicit_pair_loss(pairs, is_demo, beta, w_demo=0.0, w_pref=1.0)
    assert float(only_pref) == pytest.approx(_nls(1.0), abs=1e-12)  # weight-0 pairs leave the mean


def test_sequence_logps_counts_only_the_completion() -> None:
    logits = torch.zeros(1, 4, 5)  # uniform: every token has log-prob -log 5
    ids = torch.tensor([[1, 2, 3, 0]])
    mask = torch.tensor([[0, 0, 1, 1]])  # tokens 2 and 3 are the completion
    assert float(sequence_logps(logits, ids, mask)) == pytest.approx(-2 * math.log(5))


def test_bad_weights_and_missing_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="both 0"):
        implicit_loss(DEMO, PREF, 0.1, w_demo=0.0, w_pref=0.0)
    with pytest.raises(ValueError, match="no demonstration pairs"):
        implicit_loss(None, PREF, 0.1, w_demo=1.0)
    with pytest.raises(ValueError, match="no preference pairs"):
        explicit_reward_loss(torch.ones(1), torch.zeros(1), None, None)
    with pytest.raises(ValueError, match="demo_form"):
        implicit_loss(DEMO, PREF, 0.1, demo_form="cubic")
    with pytest.raises(ValueError, match="beta"):
        implicit_loss(DEMO, PREF, 0.0)
