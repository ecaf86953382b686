"""The pretraining losses as pure functions of tensors (hand-checkable on tiny batches).

ITC, ITM and MLM follow ALBEF (Li et al., 2021). The global agreement and the MIM losses are our reconstruction of
SemMIM's "self-supervised agreement learning on global image features" and "cross-modal MIM with targets in a
learnable K-dimensional encoding space" (abstract); the exact forms (DINO-style centring and sharpening, cross-
entropy between distributions) are our choice, written out in each docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def itc_loss(sim_i2t: torch.Tensor, sim_t2i: torch.Tensor) -> torch.Tensor:
    """Image-text contrastive loss: ``(CE(sim_i2t, diag) + CE(sim_t2i, diag)) / 2``.

    ``sim_i2t`` ``(B, B + Q)``: image i against the batch texts (then ``Q`` queued momentum texts), already divided
    by the temperature; the positive of row i is column i. ``sim_t2i`` likewise for texts against images.
    """
    target = torch.arange(sim_i2t.shape[0], device=sim_i2t.device)
    return (F.cross_entropy(sim_i2t, target) + F.cross_entropy(sim_t2i, target)) / 2


def hard_negative_index(sim: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """ALBEF's hard negatives: for each row, one column drawn with probability ``softmax(sim)`` after zeroing the
    row's positives (``same`` ``(B, B)`` bool, True where the pair counts as matching, diagonal included).
    ``sim`` must already be divided by the ITC temperature (ALBEF ``models/model_pretrain.py`` takes the softmax of
    ``sim_i2t = image_feat @ text_feat_all / self.temp``); on raw cosines the draw is nearly uniform."""
    weights = F.softmax(sim.float(), dim=1).masked_fill(same, 0.0)
    empty = (weights.sum(1) <= 0).unsqueeze(1)  # no data-dependent indexing: no host sync
    weights = torch.where(empty, (~same).float() + 1e-12 * same.float(), weights)
    return torch.multinomial(weights, 1).squeeze(1)


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Image-text matching: 2-way cross-entropy on the fused [CLS] logits ``(M, 2)``; labels 1 = match."""
    return F.cross_entropy(logits, labels)


def mask_tokens(
    ids: torch.Tensor, special_ids: tuple[int, ...], mask_id: int, vocab_size: int, prob: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT/ALBEF masking: each non-special token is chosen with ``prob``; chosen tokens become ``[MASK]`` (80%),
    a random word (10%) or stay (10%). Returns ``(input ids, labels)`` with label -100 at unchosen places."""
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    chosen = (torch.rand(ids.shape, device=ids.device) < prob) & ~special
    labels = ids.masked_fill(~chosen, -100)
    roll = torch.rand(ids.shape, device=ids.device)
    out = torch.where(chosen & (roll < 0.8), torch.full_like(ids, mask_id), ids)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    words = torch.randint(len(special_ids), vocab_size, ids.shape, device=ids.device)  # shape-static: no sync
    return torch.where(swap, words, out), labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Masked language modelling: cross-entropy over the vocabulary at places whose label is not -100; ``logits``
    ``(B, L, V)``. Zero when nothing was masked."""
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return total / (labels != -100).sum().clamp_min(1)  # no host sync on "was anything masked?"


def teacher_distribution(logits: torch.Tensor, center: torch.Tensor, tau_t: float) -> torch.Tensor:
    """Centred and sharpened target ``softmax((l - c) / tau_t)`` over the last dim (DINO); rows sum to 1."""
    return F.softmax((logits - center) / tau_t, dim=-1)


@torch.no_grad()
def sinkhorn_distribution(logits: torch.Tensor, tau_t: float, iterations: int = 3) -> torch.Tensor:
    """SwAV's equipartitioned target: Sinkhorn-Knopp on ``exp(l / tau_t)`` over the rows of ``logits`` ``(..., K)``
    (flattened to ``(M, K)``), so every prototype receives ``M / K`` of the mass; rows sum to 1. Cannot collapse
    onto one prototype or onto the uniform code, whatever the batch."""
    shape = logits.shape
    q = (logits.reshape(-1, shape[-1]).float() / tau_t).softmax(-1).T  # (K, M); softmax for stability
    m, k = q.shape[1], q.shape[0]
    for _ in range(iterations):
        q = q / q.sum(1, keepdim=True) / k
        q = q / q.sum(0, keepdim=True) / m
    return (q * m).T.reshape(shape)


def cross_entropy_between(target: torch.Tensor, student_logits: torch.Tensor, tau_s: float) -> torch.Tensor:
    """``H(P, Q) = -sum_k P_k log Q_k`` with ``Q = softmax(l_s / tau_s)``, per row (no reduction)."""
    return -(target * F.log_softmax(student_logits / tau_s, dim=-1)).sum(-1)


def agreement_loss(
    student: tuple[torch.Tensor, ...],
    teacher: tuple[torch.Tensor, torch.Tensor],
    center: torch.Tensor,
    tau_s: float,
    tau_t: float,
    teacher_kind: str = "center",
) -> torch.Tensor:
    """Global agreement between two views (our DINO-style form of SemMIM's self-supervised agreement learning):

    ``L_agr = 1/2 [ H(P_t(v1), Q_s(v2)) + H(P_t(v2), Q_s(v1)) ]`` averaged over the batch, with
    ``P_t(v) = softmax((l̄(v) - c) / tau_t)`` from the momentum model's global logits, ``Q_s(v) =
    softmax(l(v) / tau_s)`` from the online model's, ``tau_t < tau_s`` (sharpening) and ``c`` the running centre.
    Logits ``(B, K)`` come from the shared :class:`semmim.model.SemanticHead`. ``teacher_kind="sinkhorn"`` replaces
    ``P_t`` by :func:`sinkhorn_distribution` (SwAV) of the momentum logits.

    Multi-crop: ``student`` may hold more views after the two global ones (DINO's local crops, which the teacher
    never sees); the loss is then DINO's ``DINOLoss.forward`` mean over every (teacher global view, student view)
    pair but a view with itself, ``2 (V - 1)`` terms for ``V`` student views (with ``V = 2``: the form above).
    """
    if teacher_kind == "sinkhorn":
        targets = [sinkhorn_distribution(t, tau_t) for t in teacher]
    else:
        targets = [teacher_distribution(t, center, tau_t) for t in teacher]
    total, terms = 0.0, 0
    for iq, target in enumerate(targets):
        for v, logits in enumerate(student):
            if v != iq:
                total, terms = total + cross_entropy_between(target, logits, tau_s).mean(), terms + 1
    return total / terms


def update_center(center: torch.Tensor, logits: torch.Tensor, momentum: float) -> None:
    """In place: ``c <- momentum * c + (1 - momentum) * mean(logits over every leading dim)`` (DINO)."""
    center.mul_(momentum).add_(logits.detach().reshape(-1, logits.shape[-1]).mean(0), alpha=1 - momentum)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` where ``mask`` is True, without data-dependent indexing (no host sync)."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum()


def semantic_mim_loss(
    targets: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor, tau_s: float
) -> torch.Tensor:
    """Cross-modal MIM in the semantic space: ``1/|M| sum_{i in M} H(t_i, softmax(l_i / tau_s))`` over the masked
    patches ``mask`` ``(B, N)``; ``targets`` ``(B, N, K)`` distributions, ``student_logits`` ``(B, N, K)``."""
    per_patch = cross_entropy_between(targets, student_logits, tau_s)
    return _masked_mean(per_patch, mask)


def feature_mim_loss(targets: torch.Tensor, predictions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ablation "raw momentum features" as targets: ``mean_{i in M} (2 - 2 cos(pred_i, target_i))`` (BYOL form)."""
    cos = F.cosine_similarity(predictions, targets, dim=-1)
    return _masked_mean(2 - 2 * cos, mask)


def pixel_mim_loss(patches: torch.Tensor, predictions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ablation "pixels" as targets (MAE with normalised pixels): MSE between the prediction and each masked patch's
    pixels normalised by their own mean and std; ``patches``/``predictions`` ``(B, N, P)``."""
    mean = patches.mean(-1, keepdim=True)
    std = patches.var(-1, keepdim=True).add(1e-6).sqrt()
    return _masked_mean(((predictions - (patches - mean) / std) ** 2).mean(-1), mask)
