"""Padding cases into tensors, with the side-information channels and SR-GNN's per-session graphs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from sbr_side_info.schema import Cases, Prepared


@dataclass
class SessionBatch:
    """A batch of ``B`` prefixes, right-padded to length ``L`` with item 0.

    items, mask, categories, prices, ops: ``(B, L)``; labels: ``(B,)`` 1-based item ids.
    SR-GNN graph (when requested): ``nodes (B, N)`` unique items per session (0-padded), ``alias (B, L)`` position ->
    node index, ``adjacency (B, N, 2N)`` = [in-edges normalised by in-degree | out-edges by out-degree].
    """

    items: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    categories: torch.Tensor | None = None
    prices: torch.Tensor | None = None
    ops: torch.Tensor | None = None
    nodes: torch.Tensor | None = None
    alias: torch.Tensor | None = None
    adjacency: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)

    def to(self, device: torch.device | str) -> SessionBatch:
        return SessionBatch(
            **{k: (v.to(device) if v is not None else None) for k, v in self.__dict__.items()}
        )


def session_graph(seq: list[int], width: int) -> tuple[list[int], list[int], np.ndarray]:
    """Unique nodes (first-appearance order), alias of each position, and the ``(width, 2*width)`` normalised
    adjacency of SR-GNN Sec. 3.2 (edges between consecutive clicks, each counted once)."""
    nodes = list(dict.fromkeys(seq))
    index = {v: i for i, v in enumerate(nodes)}
    alias = [index[v] for v in seq]
    edges = np.zeros((width, width), dtype=np.float32)
    for a, b in itertools.pairwise(alias):
        edges[a, b] = 1.0
    indeg = edges.sum(0)
    outdeg = edges.sum(1)
    a_in = (edges / np.where(indeg == 0, 1, indeg)[None, :]).T  # a_in[v, u] = e[u, v] / indeg(v)
    a_out = edges / np.where(outdeg == 0, 1, outdeg)[:, None]  # a_out[u, v] = e[u, v] / outdeg(u)
    return nodes, alias, np.concatenate([a_in, a_out], axis=1)


def collate(data: Prepared, cases: Cases, index: list[int] | np.ndarray, graph: bool = False) -> SessionBatch:
    seqs = [cases.seqs[i] for i in index]
    width = max(len(s) for s in seqs)
    items = torch.zeros(len(seqs), width, dtype=torch.long)
    for r, s in enumerate(seqs):
        items[r, : len(s)] = torch.tensor(s)
    mask = items > 0
    batch = SessionBatch(items, mask, torch.tensor([cases.labels[i] for i in index]))
    if data.item_category is not None:
        batch.categories = torch.tensor(data.item_category)[items] * mask
    if data.item_price_level is not None:
        batch.prices = torch.tensor(data.item_price_level)[items] * mask
    if cases.ops is not None and data.n_ops:
        ops = torch.zeros_like(items)
        for r, i in enumerate(index):
            ops[r, : len(cases.ops[i])] = torch.tensor(cases.ops[i])
        batch.ops = ops
    if graph:
        n = max(len(set(s)) for s in seqs)
        nodes = torch.zeros(len(seqs), n, dtype=torch.long)
        alias = torch.zeros(len(seqs), width, dtype=torch.long)
        adjacency = np.zeros((len(seqs), n, 2 * n), dtype=np.float32)
        for r, s in enumerate(seqs):
            u, al, adj = session_graph(s, n)
            nodes[r, : len(u)] = torch.tensor(u)
            alias[r, : len(al)] = torch.tensor(al)
            adjacency[r] = adj
        batch.nodes, batch.alias, batch.adjacency = nodes, alias, torch.from_numpy(adjacency)
    return batch
