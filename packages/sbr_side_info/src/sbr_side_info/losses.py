"""Training losses: softmax cross-entropy over every item (SR-GNN, NARM, STAMP; RecBole's ``loss_type: CE``), and
GRU4Rec's own ranking losses with sampled negatives (Hidasi & Karatzoglou, CIKM 2018, "Recurrent Neural Networks
with Top-k Gains for Session-based Recommendations", Sec. 3-4; official code hidasib/GRU4Rec, ``bpr_max`` /
``top1_max`` and ``generate_neg_samples``).

For a case with target score ``r_i`` and negative scores ``r_j``, ``s_j = softmax_j(r_j)`` over the negatives only
(the target is not a negative):

- BPR-max (Eq. 9 + the score regularisation of Sec. 3.1): ``L = -log sum_j s_j sigmoid(r_i - r_j) + bpreg sum_j s_j r_j^2``
- TOP1-max (Eq. 8): ``L = sum_j s_j (sigmoid(r_j - r_i) + sigmoid(r_j^2))``

Negatives are the mini-batch's other targets plus ``n_sample`` extra items shared by the batch, drawn with
probability proportional to ``support^sample_alpha`` (Sec. 4; ``sample_alpha = 0`` uniform, ``1`` popularity).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

LOSSES = ("ce", "bpr-max", "top1-max")


def softmax_neg(scores: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores (B, M)`` over the entries where ``negative`` is True (the others get weight 0)."""
    masked = scores.masked_fill(~negative, float("-inf"))
    return torch.softmax(masked, dim=1).nan_to_num(0.0)  # a row without negatives: all weights 0


def bpr_max(
    target: torch.Tensor, scores: torch.Tensor, negative: torch.Tensor, bpreg: float = 1.0
) -> torch.Tensor:
    """Mean BPR-max loss; ``target (B,)`` the target scores, ``scores (B, M)`` the candidates' scores, ``negative
    (B, M)`` True where a candidate is a negative of that row."""
    s = softmax_neg(scores, negative)
    ranked = (torch.sigmoid(target[:, None] - scores) * s).sum(1)
    return (-torch.log(ranked + 1e-24) + bpreg * (s * scores.pow(2)).sum(1)).mean()


def top1_max(target: torch.Tensor, scores: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean TOP1-max loss (same arguments as :func:`bpr_max`)."""
    s = softmax_neg(scores, negative)
    return (s * (torch.sigmoid(scores - target[:, None]) + torch.sigmoid(scores.pow(2)))).sum(1).mean()


class NegativeSampler:
    """Extra negatives for GRU4Rec's sampled losses: ``n_sample`` item ids (1-based) per step, probability
    proportional to ``(count + 1)^alpha`` with ``count`` the item's frequency as a training target."""

    def __init__(self, labels: np.ndarray, n_items: int, n_sample: int, alpha: float) -> None:
        counts = np.bincount(np.asarray(labels), minlength=n_items)[1:].astype(np.float64)
        weights = (counts + 1.0) ** alpha
        self.prob = torch.from_numpy(weights / weights.sum())
        self.n_sample = n_sample

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        if self.n_sample == 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(self.prob, self.n_sample, replacement=True, generator=generator) + 1


def sampled_candidates(labels: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate ids ``(M,)`` = the batch's targets then the extra samples, and ``negative (B, M)``: every candidate
    except one carrying the row's own target id."""
    ids = torch.cat([labels, extra.to(labels.device)])
    negative = ids[None, :] != labels[:, None]
    return ids, negative


def sampled_loss(
    name: str,
    session: torch.Tensor,
    item_vectors: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    negative: torch.Tensor,
    bpreg: float,
) -> torch.Tensor:
    """The sampled loss ``name`` from session vectors ``(B, d)`` and the candidates' vectors ``(M, d)`` (ids ``ids``,
    the first ``B`` the batch's targets in order)."""
    scores = session @ item_vectors.T
    target = scores[torch.arange(len(labels)), torch.arange(len(labels))]
    if name == "bpr-max":
        return bpr_max(target, scores, negative, bpreg)
    if name == "top1-max":
        return top1_max(target, scores, negative)
    raise ValueError(f"unknown sampled loss {name!r}; expected bpr-max or top1-max")


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over items 1..N (``logits (B, N)``, ``labels`` 1-based)."""
    return F.cross_entropy(logits.float(), labels - 1)
