"""Storage of the fast generate path: fixed per-layer slot buffers (:class:`SlotLayer`) and one sequence's pool of
released tokens (:class:`Pool`), both on the model's device; :class:`adore.generate.AdoreCache` drives them."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import CacheLayerMixin


class SlotLayer(CacheLayerMixin):
    """One decoder layer's slot buffers; the owning :class:`AdoreCache` says where a forward writes (``cache.used``)."""

    is_sliding = False
    is_compileable = False

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self.owner = owner

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        cap = self.owner.capacity
        self.keys = key_states.new_zeros(b, h, cap, d)
        self.values = value_states.new_zeros(b, h, cap, value_states.shape[-1])
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, q = self.owner.used, key_states.shape[-2]
        if n + q > self.keys.shape[-2]:
            raise RuntimeError(
                f"AdoreCache: {n + q} tokens in a forward exceed the slot capacity {self.keys.shape[-2]}"
            )
        self.keys[:, :, n : n + q].copy_(key_states)
        self.values[:, :, n : n + q].copy_(value_states)
        return self.keys[:, :, : n + q], self.values[:, :, : n + q]

    def resize(self, capacity: int) -> None:
        """Shrink/grow the buffers to ``capacity`` slots (once, after the prompt)."""
        keep = min(capacity, self.keys.shape[-2])
        keys = self.keys.new_zeros(*self.keys.shape[:2], capacity, self.keys.shape[-1])
        values = self.values.new_zeros(*self.values.shape[:2], capacity, self.values.shape[-1])
        keys[:, :, :keep].copy_(self.keys[:, :, :keep])
        values[:, :, :keep].copy_(self.values[:, :, :keep])
        self.keys, self.values = keys, values

    def move(self, row: int, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Copy slots ``src`` of sequence ``row`` into its slots ``dst``."""
        self.keys[row].index_copy_(1, dst, self.keys[row].index_select(1, src))
        self.values[row].index_copy_(1, dst, self.values[row].index_select(1, src))

    def get_seq_length(self) -> int:
        return self.owner.used

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.used + query_length, 0

    def get_max_length(self) -> int:
        return -1


class Pool:
    """One sequence's released tokens, on the device: positions, ids, controller features, alive flags; appended in
    amortised growing buffers, taken by clearing ``alive`` (no compaction)."""

    def __init__(self, device: torch.device, feat_dim: int) -> None:
        self.n = 0
        self.pos = torch.zeros(64, dtype=torch.long, device=device)
        self.ids = torch.zeros(64, dtype=torch.long, device=device)
        self.alive = torch.zeros(64, dtype=torch.bool, device=device)
        self.feats = torch.zeros(64, feat_dim, device=device)
        self.where = torch.full(
            (64,), -1, dtype=torch.long, device=device
        )  # position -> index of an alive token

    def take(self, index: torch.Tensor) -> None:
        self.alive[index] = False
        self.where[self.pos[index]] = -1

    def append(self, pos: torch.Tensor, ids: torch.Tensor, feats: torch.Tensor) -> None:
        k = pos.numel()
        if self.n + k > self.pos.numel():
            cap = max(2 * self.pos.numel(), self.n + k)
            for name in ("pos", "ids", "alive", "feats"):
                old = getattr(self, name)
                new = old.new_zeros(cap, *old.shape[1:])
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        if k and int(pos.max()) >= self.where.numel():
            grown = torch.full((max(2 * self.where.numel(), int(pos.max()) + 1),), -1, dtype=torch.long)
            grown = grown.to(self.where.device)
            grown[: self.where.numel()] = self.where
            self.where = grown
        self.where[pos] = torch.arange(self.n, self.n + k, device=self.where.device)
        self.pos[self.n : self.n + k] = pos
        self.ids[self.n : self.n + k] = ids
        self.feats[self.n : self.n + k] = feats
        self.alive[self.n : self.n + k] = True
        self.n += k
