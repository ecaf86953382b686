"""Retrieval with latent, lexicon and combined scores; a sparse inverted index; match explanations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F


def latent_similarity(text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (texts, videos) of unit-norm latent vectors."""
    return text @ video.T


def lexicon_similarity(text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """Cosine of lexicon vectors: a sparse dot product of L2-normalised non-negative vectors, in [0, 1]."""
    return F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).T


def combined_similarity(
    s_latent: torch.Tensor, s_lexicon: torch.Tensor, latent_weight: float
) -> torch.Tensor:
    """``w * S_latent + (1 - w) * S_lexicon``; ``w=1`` is latent-only, ``w=0`` lexicon-only (exactly)."""
    if not 0.0 <= latent_weight <= 1.0:
        raise ValueError(f"latent_weight={latent_weight!r}: expected a float in [0, 1]")
    if latent_weight == 1.0:
        return s_latent.clone()
    if latent_weight == 0.0:
        return s_lexicon.clone()
    return latent_weight * s_latent + (1.0 - latent_weight) * s_lexicon


class LexiconIndex:
    """Inverted index over sparse lexicon vectors: for each dimension the ids and weights of the items where it
    is non-zero. Scoring a query touches only the postings of its non-zero dimensions."""

    def __init__(self, vectors: torch.Tensor, normalize: bool = True) -> None:
        """``vectors``: (items, vocab) non-negative, dense or a sparse COO tensor (for galleries too large to
        hold densely: 100k x 49,408 floats would be 18 GiB)."""
        if vectors.ndim != 2:
            raise ValueError(
                f"index vectors must be a (items, vocab) matrix, got shape {tuple(vectors.shape)}"
            )
        self.normalize = normalize
        self.num_items, self.vocab_size = vectors.shape
        coo = vectors.coalesce().float() if vectors.is_sparse else vectors.float().to_sparse()
        idx, vals = coo.indices(), coo.values()
        if (vals < 0).any():
            raise ValueError("index vectors must be non-negative (lexicon weights)")
        if normalize:
            norms = torch.zeros(self.num_items).index_add_(0, idx[0], vals.pow(2)).sqrt().clamp_min(1e-12)
            vals = vals / norms[idx[0]]
        sparse = torch.sparse_coo_tensor(idx, vals, coo.shape).to_sparse_csc()
        self._ptr = sparse.ccol_indices()
        self._rows = sparse.row_indices()
        self._vals = sparse.values()

    @property
    def nnz(self) -> int:
        return int(self._vals.numel())

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self._ptr, self._rows, self._vals))

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        """Scores of every item for one query vector (V,): equals ``lexicon_similarity`` when normalised."""
        q = F.normalize(query.float(), dim=-1) if self.normalize else query.float()
        out = torch.zeros(self.num_items)
        for dim in torch.nonzero(q).flatten().tolist():
            start, end = int(self._ptr[dim]), int(self._ptr[dim + 1])
            out.index_add_(0, self._rows[start:end], self._vals[start:end] * q[dim])
        return out

    def search(self, query: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k ``(scores, item ids)`` for one query."""
        return torch.topk(self.scores(query), min(k, self.num_items))


def explain_match(
    text_lexicon: torch.Tensor, video_lexicon: torch.Tensor, words: Sequence[str], k: int = 5
) -> list[tuple[str, float]]:
    """The ``k`` lexicon dimensions contributing most to a text-video match (product of weights), as
    ``(word, contribution)``, skipping dimensions where either side is zero."""
    contribution = text_lexicon * video_lexicon
    values, ids = torch.topk(contribution, min(k, contribution.numel()))
    return [(words[int(i)], float(v)) for v, i in zip(values, ids) if v > 0]


def top_dimensions(lexicon: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest dimensions of each row of (B, V)."""
    return torch.topk(lexicon, k, dim=-1).indices
