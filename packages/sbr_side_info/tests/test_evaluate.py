"""The evaluation protocol: hand rankings, full ranking over every item but padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paperlab.metrics import rank_of_target, ranking_metrics
from sbr_side_info.evaluate import evaluate, target_ranks
from sbr_side_info.models import SessionModel
from sbr_side_info.schema import Cases, Prepared


def test_target_ranks_by_hand() -> None:
    # items 1..4 -> logits columns 0..3
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.2], [3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    labels = torch.tensor([3, 4, 2])
    assert target_ranks(logits, labels).tolist() == [2, 4, 1]  # ties count in the target's favour
    assert target_ranks(logits, labels).tolist() == list(rank_of_target(logits.numpy(), (labels - 1).numpy()))


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
