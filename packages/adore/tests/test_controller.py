"""The controller learns the oracle top-K: on held-out sequences it recovers more of it than recency or random."""

from __future__ import annotations

import pytest
import torch

from adore.controller import ControllerConfig, oracle_labels, recall_at_k, train_controller
from adore.tasks import RecallConfig, answer_accuracy, sample
from paperlab.config import ConfigError
from paperlab.models import tiny_causal_lm

TASK = RecallConfig(n_keys=16, n_values=16, n_filler=8, n_pairs=6, filler_run=3, n_queries=6)


def test_oracle_labels_by_hand() -> None:
    attn = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.7, 0.1, 0], [0.1, 0.2, 0.3, 0.4]])
    assert oracle_labels(attn, 3, 2).tolist() == [0.0, 1.0, 1.0]
    assert oracle_labels(attn, 2, 5).tolist() == [1.0, 1.0]


def test_recall_language_layout() -> None:
    ids, mask = sample(TASK, 4, seed=0)
    assert ids.shape == (4, TASK.length) and int(mask.sum()) == 4 * TASK.n_queries
    for row, m in zip(ids, mask, strict=True):
        pairs = {int(row[1 + 5 * i]): int(row[2 + 5 * i]) for i in range(TASK.n_pairs)}
        for t in torch.nonzero(m).flatten().tolist():
            assert pairs[int(row[t - 1])] == int(
                row[t]
            )  # every answer is the value paired with the asked key
    logits = torch.full((TASK.length - 1, TASK.vocab_size), -10.0)
    logits[torch.arange(TASK.length - 1), ids[0, 1:]] = 10.0
    acc, ce = answer_accuracy(logits, ids[0], mask[0])
    assert acc == 1.0 and ce < 1e-6


def test_trained_controller_beats_recency_and_random() -> None:
    torch.manual_seed(0)
    lm = tiny_causal_lm(
        vocab_size=TASK.vocab_size,
        layers=2,
        hidden=32,
        heads=4,
        max_position=64,
        attn_implementation="eager",
        seed=0,
    )
    train, _ = sample(TASK, 32, seed=1)
    held_out, _ = sample(TASK, 8, seed=2)
    controller = train_controller(lm, train, ControllerConfig(dim=32, sequences=32, epochs=2), progress=False)
    g = torch.Generator().manual_seed(0)
    learned = recall_at_k(lambda p, i, t: controller.score(p, i, t, "rebuild"), lm, held_out, 4)
    recency = recall_at_k(lambda p, i, t: p.float(), lm, held_out, 4)
    rand = recall_at_k(lambda p, i, t: torch.rand(p.numel(), generator=g), lm, held_out, 4)
    assert learned > recency + 0.1 and learned > rand + 0.1, (learned, recency, rand)


def test_bad_controller_config() -> None:
    with pytest.raises(ConfigError, match="top_k"):
        ControllerConfig(top_k=0)
    with pytest.raises(ConfigError, match="n_queries"):
        RecallConfig(n_pairs=2, n_queries=3, with_replacement=False)
