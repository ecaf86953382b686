"""The fusion objective (FuseLLM Sec. 3.2; ProFuser keeps it in both modes):

    L = lam * L_CLM + (1 - lam) * L_Fusion,

``L_CLM`` the next-token cross entropy on the response the target learns, ``L_Fusion`` the cross entropy of the
target's distribution against the advantageous source's (fused) distribution, both averaged over response tokens.
The source distribution of a token is its stored top-k log-probabilities renormalised over the k (FuseLLM's
collator: a softmax over the k logits, ``temperature`` 1), placed at the mapped target ids; a token with no source
row (-1 ids everywhere) falls back to the one-hot ground truth, as FuseLLM does. lam = 0.9 (FuseLLM Sec. 4.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class FusionLoss:
    """Parts of one batch's loss (each a scalar tensor); ``total`` is the one to back-propagate."""

    total: torch.Tensor
    clm: torch.Tensor
    fusion: torch.Tensor
    covered: torch.Tensor  # share of response tokens that had a source row
    n_tokens: torch.Tensor  # response tokens scored (the means' denominator)


def teacher_weights(
    teacher_logp: torch.Tensor, teacher_ids: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """(..., k) probabilities: softmax of the stored log-probs over the mapped (id >= 0) entries; all zero where a
    token has no mapped entry."""
    valid = teacher_ids >= 0
    scores = (teacher_logp.float() / temperature).masked_fill(~valid, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0) * valid


def fusion_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_logp: torch.Tensor,
    lam: float,
    temperature: float = 1.0,
) -> FusionLoss:
    """``logits`` (B, L, V) of the target; ``labels`` (B, L) with -100 off the response; ``teacher_ids`` /
    ``teacher_logp`` (B, L, k) the source distribution over the token *at* each position (row i describes label i).
    Logits at t are scored against labels and teacher rows at t + 1 (the usual causal shift)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    labels, ids, lp = labels[:, 1:], teacher_ids[:, 1:].long(), teacher_logp[:, 1:]
    mask = labels != -100
    n = mask.sum().clamp(min=1)
    ce_tok = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    weights = teacher_weights(lp, ids, temperature)
    has_row = weights.sum(-1) > 0
    fus_tok = -(weights * logp.gather(-1, ids.clamp(min=0))).sum(-1)
    fus_tok = torch.where(has_row, fus_tok, ce_tok)
    clm = (ce_tok * mask).sum() / n
    fusion = (fus_tok * mask).sum() / n
    covered = (has_row & mask).sum() / n
    return FusionLoss(lam * clm + (1 - lam) * fusion, clm, fusion, covered, n)
