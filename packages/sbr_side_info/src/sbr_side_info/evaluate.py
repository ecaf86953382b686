"""One evaluation protocol for every model: full ranking over all items, HR@K, MRR@K, NDCG@K (K in {10, 20}).

No sampled negatives: the target is ranked against every item 1..N; only the padding id 0 is excluded. HR@20 is
SR-GNN's P@20 (one target per case).

**Ties never help the target.** A case whose target is scored strictly below ``h`` items and equal to ``t`` others
could sit at any rank ``h+1 .. h+t+1``; every metric is its expectation over a uniformly random order of the tied
items (:func:`tie_aware_metrics`). Without ties this is the usual rank ``1 + h`` (SR-GNN's and NARM's
``(scores > target).sum() + 1``, RecBole's ``topk``); a model that scores every item alike gets exactly the chance
value (HR@K = K / N), never the perfect score that counting ties in the target's favour would give. Non-finite
scores (NaN, +-inf) are an error naming the case.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sbr_side_info.batch import collate
from sbr_side_info.models import SessionModel
from sbr_side_info.schema import Cases, Prepared


class NonFiniteScoresError(ValueError):
    """A model produced NaN or infinite scores; ranking them would be meaningless."""


def rank_counts(
    logits: torch.Tensor, labels: torch.Tensor, first_case: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(higher, ties)`` per row of ``logits (B, n_items - 1)`` over items 1..N for 1-based ``labels``: the number
    of items scored strictly above the target and the number of *other* items scored equal to it.
    Raises :class:`NonFiniteScoresError` (naming the first bad case, counted from ``first_case``) on NaN or inf."""
    finite = torch.isfinite(logits).all(1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0, 0])
        bad = logits[row][~torch.isfinite(logits[row])][0].item()
        raise NonFiniteScoresError(
            f"case {first_case + row}: the model's scores are not finite ({bad} among "
            f"{int((~torch.isfinite(logits)).sum())} non-finite values in this batch); expected finite logits"
        )
    target = logits.gather(1, (labels - 1).unsqueeze(1))
    higher = (logits > target).sum(1)
    ties = (logits == target).sum(1) - 1
    return higher, ties


def target_ranks(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Expected 1-based rank of each target with ties broken uniformly at random: ``1 + higher + ties / 2``."""
    higher, ties = rank_counts(logits, labels)
    return 1.0 + higher.double() + ties.double() / 2


def tie_aware_metrics(higher: np.ndarray, ties: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """``{"HR@K", "MRR@K", "NDCG@K"}`` (fractions) averaged over cases, each the expectation over a uniformly random
    order of the target's ties: rank ``r`` uniform on ``higher+1 .. higher+ties+1``, so
    ``HR@K = #{r <= K} / (ties+1)``, ``MRR@K = sum_{r <= K} (1/r) / (ties+1)``, ``NDCG@K`` with ``1/log2(r+1)``."""
    higher = np.asarray(higher, dtype=np.int64)
    ties = np.asarray(ties, dtype=np.int64)
    out: dict[str, float] = {}
    if higher.size == 0:
        return {f"{m}@{k}": 0.0 for k in ks for m in ("HR", "MRR", "NDCG")}
    spread = ties + 1.0
    for k in ks:
        r = np.arange(1, k + 1, dtype=np.float64)
        cum = {
            "HR": np.concatenate([[0.0], np.cumsum(np.ones(k))]),
            "MRR": np.concatenate([[0.0], np.cumsum(1.0 / r)]),
            "NDCG": np.concatenate([[0.0], np.cumsum(1.0 / np.log2(r + 1.0))]),
        }
        lo = np.minimum(higher, k)  # ranks higher+1 .. higher+ties+1, clipped to 1..k
        hi = np.minimum(higher + ties + 1, k)
        for name, c in cum.items():
            out[f"{name}@{k}"] = float(np.mean((c[hi] - c[lo]) / spread))
    return out


@torch.no_grad()
def evaluate(
    model: SessionModel,
    data: Prepared,
    cases: Cases,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``{"HR@10", "MRR@10", "NDCG@10", "HR@20", ...}`` in percent, over all of ``cases`` (tie-aware, fp32 scores)."""
    was_training = model.training
    model.eval()
    higher, ties = [], []
    try:
        for start in range(0, len(cases), batch_size):
            index = np.arange(start, min(start + batch_size, len(cases)))
            batch = collate(data, cases, index, graph=model.needs_graph).to(device)
            h, t = rank_counts(model(batch).float(), batch.labels, first_case=start)
            higher.append(h.cpu().numpy())
            ties.append(t.cpu().numpy())
    finally:
        model.train(was_training)
    metrics = tie_aware_metrics(
        np.concatenate(higher) if higher else np.zeros(0), np.concatenate(ties) if ties else np.zeros(0), ks
    )
    return {k: 100.0 * v for k, v in metrics.items()}
