"""UNIFY's training objectives.

The paper's abstract fixes the structure (two-stage semantics grounding that first activates relevant lexicon
dimensions and then suppresses irrelevant ones; unified learning with structure sharing and self-distillation);
its equations could not be read here, so each term below follows the closest published convention and is named
in the README ("Choices where the paper is silent"):

- :func:`contrastive_loss`  symmetric InfoNCE over a (texts x videos) logit matrix (CLIP / CLIP4Clip).
- :func:`activation_loss`   stage 1, activate: multi-label BCE pushing a lexicon vector to fire on the caption's
  content words, with p_k = 1 - exp(-e_k) (e_k = log(1+ReLU(w_k)) >= 0, so p_k in [0, 1) and p_k = 0 iff e_k = 0),
  class-balanced: per item the mean BCE over its positive dimensions plus the mean over its negative ones
  (the class-balanced cross-entropy of HED, Xie & Tu 2015, eq. 2, with beta = 1/2), so ~5 positives among
  49,408 dimensions weigh as much as all the negatives together.
- :func:`flops_loss`        stage 2, suppress: the FLOPS regulariser sum_k (mean_b e_bk)^2 (SPLADE, Formal et al.
  2021), which drives rarely-needed dimensions to exactly zero.
- :func:`self_distillation_loss` KL(sg[softmax(teacher / tau)] || softmax(student / tau)) row- and column-wise.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: mean of CE over rows (text -> video) and columns (video -> text); pairs on the
    diagonal. ``logits``: (B, B), already scaled by the temperature."""
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"logits must be square (B, B), got {tuple(logits.shape)}")
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def activation_loss(lexicon: torch.Tensor, targets: torch.Tensor, concept_mask: torch.Tensor) -> torch.Tensor:
    """Stage-1 grounding, class-balanced. ``lexicon`` (B, V) >= 0; ``targets`` (B, V) multi-hot content words of
    the caption. With p = 1 - exp(-lexicon) and the concept dimensions only (specials excluded), each item's loss is
    ``mean_{k in P} -log p_k + mean_{k in N} -log(1 - p_k)`` (P: its targets, N: the other concept dimensions;
    an empty set contributes 0), averaged over the batch. The plain mean over all V dimensions would give the
    positives a weight of |P| / V (~1e-4 with the CLIP vocabulary): a suppression loss."""
    p = (1.0 - torch.exp(-lexicon.float())).clamp(1e-6, 1 - 1e-6)
    concept = concept_mask.float().expand_as(p)
    pos = targets.float() * concept
    neg = (1.0 - targets.float()) * concept
    pos_term = (-torch.log(p) * pos).sum(1) / pos.sum(1).clamp(min=1)
    neg_term = (-torch.log1p(-p) * neg).sum(1) / neg.sum(1).clamp(min=1)
    return (pos_term + neg_term).mean()


def flops_loss(lexicon: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser sum_k (mean_b e_bk)^2 over a (B, V) batch; zero iff every vector is zero."""
    return lexicon.mean(0).pow(2).sum()


def self_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """KL(sg[softmax(teacher/tau)] || softmax(student/tau)) over rows and columns of (B, B) logit matrices,
    averaged; the teacher receives no gradient. ``tau^2`` rescales as in Hinton et al."""
    t = teacher.detach()
    rows = F.kl_div(
        F.log_softmax(student / tau, 1), F.log_softmax(t / tau, 1), log_target=True, reduction="batchmean"
    )
    cols = F.kl_div(
        F.log_softmax(student.T / tau, 1), F.log_softmax(t.T / tau, 1), log_target=True, reduction="batchmean"
    )
    return 0.5 * (rows + cols) * tau**2
