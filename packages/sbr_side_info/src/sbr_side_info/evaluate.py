"""One evaluation protocol for every model: full ranking over all items, HR@K, MRR@K, NDCG@K (K in {10, 20}).

No sampled negatives: the target is ranked against every item 1..N; only the padding id 0 is excluded. Ties count
in the target's favour (the rank is 1 + the number of items scored strictly higher), as
:func:`paperlab.metrics.rank_of_target`. HR@20 is SR-GNN's P@20 (one target per case).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from paperlab.metrics import ranking_metrics
from sbr_side_info.batch import collate
from sbr_side_info.models import SessionModel
from sbr_side_info.schema import Cases, Prepared


def target_ranks(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``labels`` (1-based item ids) in ``logits (B, n_items - 1)`` over items 1..N."""
    target = logits.gather(1, (labels - 1).unsqueeze(1))
    return (logits > target).sum(1) + 1


@torch.no_grad()
def evaluate(
    model: SessionModel,
    data: Prepared,
    cases: Cases,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``{"HR@10", "MRR@10", "NDCG@10", "HR@20", ...}`` in percent, over all of ``cases``."""
    was_training = model.training
    model.eval()
    ranks = []
    for start in range(0, len(cases), batch_size):
        index = list(range(start, min(start + batch_size, len(cases))))
        batch = collate(data, cases, index, graph=model.needs_graph).to(device)
        ranks.append(target_ranks(model(batch), batch.labels).cpu().numpy())
    model.train(was_training)
    metrics = ranking_metrics(np.concatenate(ranks), ks)
    return {k: 100.0 * v for k, v in metrics.items()}
