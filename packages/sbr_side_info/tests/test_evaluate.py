"""The evaluation protocol: hand rankings, ties that never help the target, non-finite scores refused, full\nranking over every item but padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paperlab.metrics import rank_of_target, ranking_metrics
from sbr_side_info.evaluate import (
    NonFiniteScoresError,
    evaluate,
    rank_counts,
    target_ranks,
    tie_aware_metrics,
)
from sbr_side_info.models import SessionModel
from sbr_side_info.schema import Cases, Prepared


def test_target_ranks_by_hand() -> None:
    # items 1..4 -> logits columns 0..3
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.2], [3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    labels = torch.tensor([3, 4, 2])
    higher, ties = rank_counts(logits, labels)
    assert higher.tolist() == [1, 3, 0] and ties.tolist() == [0, 0, 3]
    # ties never help the target: the 4-way tie sits at rank 1..4, expected 2.5 (the old code said 1)
    assert target_ranks(logits, labels).tolist() == [2.0, 4.0, 2.5]
    # without ties the rank is paperlab's rank_of_target (1 + strictly higher)
    assert target_ranks(logits[:2], labels[:2]).tolist() == list(
        rank_of_target(logits[:2].numpy(), (labels[:2] - 1).numpy())
    )


def test_tie_aware_metrics_by_hand() -> None:
    # case 1: 2 higher, 2 ties -> rank uniform on {3, 4, 5}; case 2: 0 higher, 0 ties -> rank 1
    m = tie_aware_metrics(np.array([2, 0]), np.array([2, 0]), ks=(4,))
    assert m["HR@4"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["MRR@4"] == pytest.approx(((1 / 3 + 1 / 4) / 3 + 1) / 2)
    assert m["NDCG@4"] == pytest.approx(((1 / math.log2(4) + 1 / math.log2(5)) / 3 + 1) / 2)
    # without ties: the usual metrics of the ranks 1 + higher
    plain = ranking_metrics(np.array([1, 3, 15, 25]), (10, 20))
    tie_free = tie_aware_metrics(np.array([0, 2, 14, 24]), np.zeros(4, dtype=int), (10, 20))
    assert tie_free == pytest.approx(plain)


class ConstantScores(SessionModel):
    """Scores every item alike (a dead model): the old optimistic ties gave it HR@20 = 100."""

    def __init__(self, n_items: int, value: float = 0.0) -> None:
        super().__init__(n_items, 1)
        self.value = value

    def forward(self, batch):
        return torch.full((len(batch.labels), self.n_items - 1), self.value)


def test_constant_logits_score_chance_not_100() -> None:
    n_items = 101  # 100 candidates
    data = Prepared("toy", Cases([], []), Cases([], []), Cases([[5], [7], [9]], [100, 1, 81]), n_items)
    metrics = evaluate(ConstantScores(n_items), data, data.test, ks=(10, 20))
    assert metrics["HR@20"] == pytest.approx(20.0)  # 100 * 20 / 100: chance
    assert metrics["HR@10"] == pytest.approx(10.0)
    assert metrics["MRR@20"] == pytest.approx(100 * sum(1 / r for r in range(1, 21)) / 100)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_raise(bad: float) -> None:
    n_items = 101
    data = Prepared("toy", Cases([], []), Cases([], []), Cases([[5], [7]], [100, 1]), n_items)
    with pytest.raises(NonFiniteScoresError, match="case 0: the model's scores are not finite"):
        evaluate(ConstantScores(n_items, bad), data, data.test)


def test_metrics_on_hand_ranks() -> None:
    ranks = np.array([1, 3, 15, 25])
    m = ranking_metrics(ranks, (10, 20))
    assert m["HR@10"] == 0.5 and m["HR@20"] == 0.75
    assert m["MRR@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["MRR@20"] == pytest.approx((1 + 1 / 3 + 1 / 15) / 4)
    assert m["NDCG@20"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(16)) / 4)


class FixedScores(SessionModel):
    """Scores item i by i (so the last item ranks first), whatever the session."""

    def __init__(self, n_items: int) -> None:
        super().__init__(n_items, 1)

    def forward(self, batch):
        return torch.arange(1, self.n_items, dtype=torch.float).expand(len(batch.labels), -1)


def test_full_ranking_covers_every_item_and_never_the_padding() -> None:
    n_items = 101  # items 1..100
    data = Prepared("toy", Cases([], []), Cases([], []), Cases([[5], [5], [5]], [100, 1, 81]), n_items)
    metrics = evaluate(FixedScores(n_items), data, data.test, ks=(10, 20))
    # ranks: item 100 -> 1, item 1 -> 100 (last of 100 candidates, not 101), item 81 -> 20
    assert metrics["HR@20"] == pytest.approx(200 / 3)
    assert metrics["MRR@20"] == pytest.approx(100 * (1 + 1 / 20) / 3)
    assert metrics["HR@10"] == pytest.approx(100 / 3)
