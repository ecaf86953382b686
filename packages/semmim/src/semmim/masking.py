"""Which patches to mask: text-guided (SemMIM's masking strategy, from text-to-patch relevance) or uniform random
(the ablation). A mask is a bool tensor ``(B, N)``, True = masked; every row masks exactly :func:`masked_count`."""

from __future__ import annotations

import math

import torch

from paperlab.config import require


def masked_count(num_patches: int, ratio: float) -> int:
    """``ceil(ratio * N)``, clipped to ``[1, N - 1]`` so that something is masked and something stays visible."""
    require(0.0 < ratio < 1.0, "mim.mask_ratio", ratio, "a float in (0, 1)")
    return min(max(math.ceil(ratio * num_patches), 1), num_patches - 1)


def patch_relevance(attention: torch.Tensor, text_attention: torch.Tensor) -> torch.Tensor:
    """Text-to-patch relevance ``(B, N)`` from a fusion cross-attention map ``(B, heads, L, 1 + N)``: the
    attention each patch receives, averaged over heads and over the valid text tokens (``text_attention``
    ``(B, L)`` bool); the image [CLS] column is dropped."""
    per_token = attention.mean(1)[..., 1:]  # (B, L, N)
    w = text_attention.to(per_token.dtype).unsqueeze(-1)
    return (per_token * w).sum(1) / w.sum(1).clamp_min(1.0)


def text_guided_mask(
    relevance: torch.Tensor, ratio: float, mode: str = "top", temperature: float = 1.0
) -> torch.Tensor:
    """Mask the ``masked_count`` patches most relevant to the text.

    ``mode="top"``: exactly the highest-relevance patches (ties broken by index). ``mode="sample"``: a draw
    without replacement with probabilities ``softmax(relevance / temperature)`` (Gumbel top-k), which keeps some
    randomness while favouring relevant patches. ``relevance``: ``(B, N)``.
    """
    b, n = relevance.shape
    k = masked_count(n, ratio)
    require(mode in ("top", "sample"), "mim.guided", mode, "top or sample")
    scores = relevance.float()
    if mode == "sample":
        u = torch.rand_like(scores).clamp(1e-9, 1 - 1e-9)
        scores = scores / temperature - torch.log(-torch.log(u))
    index = torch.topk(scores, k, dim=1).indices
    return torch.zeros(b, n, dtype=torch.bool, device=relevance.device).scatter_(1, index, True)


def random_mask(
    batch: int, num_patches: int, ratio: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A uniformly random subset of ``masked_count`` patches per row (the random-masking ablation)."""
    k = masked_count(num_patches, ratio)
    index = torch.rand(batch, num_patches, device=device).argsort(dim=1)[:, :k]
    return torch.zeros(batch, num_patches, dtype=torch.bool, device=device).scatter_(1, index, True)
