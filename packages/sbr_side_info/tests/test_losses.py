"""GRU4Rec's own losses (Hidasi & Karatzoglou 2018): BPR-max and TOP1-max by hand, the negatives, and GRU4Rec
trained with them beating a popularity ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbr_side_info.losses import NegativeSampler, bpr_max, sampled_candidates, top1_max
from sbr_side_info.train import TrainConfig, train_model


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_bpr_max_and_top1_max_by_hand() -> None:
    # one case: target score 1.0; candidates 0.0 and 2.0 are negatives; the third (the target's own id) is not
    target = torch.tensor([1.0])
    scores = torch.tensor([[0.0, 2.0, 1.0]])
    negative = torch.tensor([[True, True, False]])
    s0, s1 = 1 / (1 + math.e**2), math.e**2 / (1 + math.e**2)  # softmax over the negatives only
    bpr = -math.log(s0 * _sig(1.0) + s1 * _sig(-1.0)) + 0.5 * (s0 * 0.0 + s1 * 4.0)
    top1 = s0 * (_sig(-1.0) + _sig(0.0)) + s1 * (_sig(1.0) + _sig(4.0))
    assert bpr_max(target, scores, negative, bpreg=0.5).item() == pytest.approx(bpr, rel=1e-6)
    assert top1_max(target, scores, negative).item() == pytest.approx(top1, rel=1e-6)


def test_negatives_are_the_batch_targets_plus_shared_samples() -> None:
    ids, negative = sampled_candidates(torch.tensor([3, 5, 3]), torch.tensor([5, 7]))
    assert ids.tolist() == [3, 5, 3, 5, 7]
    assert negative.tolist() == [
        [False, True, False, True, True],  # the row's own target id (twice) is never a negative
        [True, False, True, False, True],
        [False, True, False, True, True],
    ]
    sampler = NegativeSampler(np.array([1, 1, 1, 2]), n_items=4, n_sample=5, alpha=1.0)
    assert sampler.prob.tolist() == pytest.approx([4 / 7, 2 / 7, 1 / 7])  # (count + 1)^alpha over items 1..3
    assert sampler.sample(torch.Generator().manual_seed(0)).min().item() >= 1


@pytest.mark.parametrize("loss", ["bpr-max", "top1-max"])
def test_gru4rec_with_its_own_loss_beats_popularity(loss, small_synthetic, popularity_hr10) -> None:
    cfg = TrainConfig(
        dim=16,
        epochs=3,
        lr=0.01,
        batch_size=64,
        progress=False,
        eval_test_every_epoch=False,
        loss=loss,
        n_sample=32,
    )
    result = train_model("GRU4Rec", small_synthetic, cfg)
    assert result["test"]["HR@10"] > popularity_hr10 + 10, (loss, result["test"]["HR@10"], popularity_hr10)
    assert result["history"][-1]["loss"] < result["history"][0]["loss"]


def test_sampled_loss_refused_for_a_model_with_two_scorers(small_synthetic) -> None:
    with pytest.raises(ValueError, match="CoHHN has no single scorer"):
        train_model("CoHHN", small_synthetic, TrainConfig(dim=8, epochs=1, progress=False, loss="bpr-max"))
