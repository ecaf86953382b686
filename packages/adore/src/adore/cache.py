"""A KV cache whose tokens can be released and rebuilt, with their original positions kept.

:class:`ReleasableCache` is a ``transformers`` 5.x :class:`~transformers.cache_utils.Cache` (one
:class:`ReleasableLayer` per decoder layer) that also records, for every cached token, its original position and token
id, and for every released token the same two numbers — everything needed to rebuild its K/V later, nothing more.
Selection is pooled: one kept set for all layers (a rebuilt token needs its K/V in every layer anyway).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class ReleasableLayer(DynamicLayer):
    """A dynamic layer that can keep a subset of its tokens (``keep``)."""

    def keep(self, index: torch.Tensor) -> None:
        """Keep the tokens at ``index`` (1-D, into the sequence axis), in that order."""
        if self.is_initialized and self.keys.numel():
            self.keys = self.keys.index_select(-2, index)
            self.values = self.values.index_select(-2, index)


class ReleasableCache(Cache):
    """The cache, plus the bookkeeping of positions and ids of cached and released tokens (batch size 1)."""

    def __init__(self) -> None:
        super().__init__(layer_class_to_replicate=ReleasableLayer)
        self.positions = torch.empty(0, dtype=torch.long)  # (n,) original positions of the cached tokens
        self.token_ids = torch.empty(0, dtype=torch.long)  # (n,)
        self.released_positions = torch.empty(0, dtype=torch.long)  # (r,)
        self.released_ids = torch.empty(0, dtype=torch.long)  # (r,)

    @property
    def size(self) -> int:
        return int(self.positions.numel())

    def record(self, token_ids: torch.Tensor, positions: torch.Tensor) -> None:
        """Book the tokens the last forward appended (call after every forward)."""
        self.positions = torch.cat([self.positions, positions.reshape(-1).cpu()])
        self.token_ids = torch.cat([self.token_ids, token_ids.reshape(-1).cpu()])
        for layer in self.layers:
            if layer.get_seq_length() != self.size:
                raise RuntimeError(
                    f"cache layer holds {layer.get_seq_length()} tokens, bookkeeping {self.size}"
                )

    def keep(self, index: torch.Tensor) -> None:
        """Keep cached tokens ``index`` (into the current order); the others are released (ids + positions)."""
        index = index.reshape(-1).cpu()
        dropped = torch.ones(self.size, dtype=torch.bool)
        dropped[index] = False
        self.released_positions = torch.cat([self.released_positions, self.positions[dropped]])
        self.released_ids = torch.cat([self.released_ids, self.token_ids[dropped]])
        self.positions = self.positions[index]
        self.token_ids = self.token_ids[index]
        for layer in self.layers:
            layer.keep(index.to(layer.keys.device))

    def take_released(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Remove released tokens ``index`` from the pool (to rebuild them); returns their ``(ids, positions)``."""
        index = index.reshape(-1).cpu()
        mask = torch.ones(self.released_positions.numel(), dtype=torch.bool)
        mask[index] = False
        ids, pos = self.released_ids[index], self.released_positions[index]
        self.released_ids, self.released_positions = self.released_ids[mask], self.released_positions[mask]
        return ids, pos
