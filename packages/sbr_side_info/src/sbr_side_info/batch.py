"""Padding cases into tensors, with the side-information channels and SR-GNN's per-session graphs.

A split's cases are laid out once as flat arrays (:class:`CaseTable`: the concatenated sequences, their offsets and,
for SR-GNN, each position's node index), so a batch is a few vectorised gathers instead of a Python loop over its
rows; :func:`length_bucketed_batches` groups cases of similar length so that a batch pads to little more than its
own longest prefix.
"""

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

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SessionBatch:
        return SessionBatch(
            **{
                k: (v.to(device, non_blocking=non_blocking) if v is not None else None)
                for k, v in self.__dict__.items()
            }
        )

    def pin_memory(self) -> SessionBatch:
        return SessionBatch(
            **{k: (v.pin_memory() if v is not None else None) for k, v in self.__dict__.items()}
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


class CaseTable:
    """Every case of a split as flat arrays, built once: ``flat`` (all sequences concatenated), ``offsets (n + 1)``,
    ``lengths (n,)``, ``labels (n,)``, ``ops_flat`` (behaviours, or None) and, for SR-GNN, ``alias_flat`` (each
    position's node index: first-appearance order within its case, as :func:`session_graph`) and ``n_nodes (n,)``.
    """

    def __init__(self, cases: Cases) -> None:
        self.lengths = np.fromiter((len(s) for s in cases.seqs), dtype=np.int64, count=len(cases))
        self.offsets = np.zeros(len(cases) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self.flat = np.fromiter(
            itertools.chain.from_iterable(cases.seqs), dtype=np.int64, count=self.offsets[-1]
        )
        self.labels = np.asarray(cases.labels, dtype=np.int64)
        self.ops_flat = None
        if cases.ops is not None:
            self.ops_flat = np.fromiter(
                itertools.chain.from_iterable(cases.ops), dtype=np.int64, count=self.offsets[-1]
            )
        self._alias: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def graph_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """``(alias_flat, n_nodes)``, computed once, vectorised: a position is a node's first appearance when no
        earlier position of its case holds the same item; node indices count first appearances in order."""
        if self._alias is None:
            case = np.repeat(np.arange(len(self)), self.lengths)
            pos = np.arange(len(self.flat))
            order = np.lexsort((pos, self.flat, case))  # by case, then item, then position
            first_in_group = np.ones(len(order), dtype=bool)
            same = (case[order][1:] == case[order][:-1]) & (self.flat[order][1:] == self.flat[order][:-1])
            first_in_group[1:] = ~same
            group_first = np.maximum.accumulate(np.where(first_in_group, np.arange(len(order)), 0))
            first_pos = np.empty_like(pos)
            first_pos[order] = order[group_first]  # the first position of each position's (case, item)
            is_first = first_pos == pos
            count = np.cumsum(is_first) - 1  # running count of first appearances, over the whole table
            start = np.zeros(len(self), dtype=np.int64)
            nonempty = self.lengths > 0
            start[nonempty] = count[
                self.offsets[:-1][nonempty]
            ]  # a case's first position is a first appearance
            alias = count[first_pos] - start[case]
            n_nodes = np.bincount(case, weights=is_first, minlength=len(self)).astype(np.int64)
            self._alias = (alias, n_nodes)
        return self._alias


def case_table(cases: Cases) -> CaseTable:
    """The :class:`CaseTable` of ``cases``, built on first use and kept on the object (cases are not mutated)."""
    table = cases.__dict__.get("_table")
    if table is None or len(table) != len(cases):
        table = CaseTable(cases)
        cases.__dict__["_table"] = table
    return table


def _side_tensor(data: Prepared, field: str) -> torch.Tensor | None:
    values = getattr(data, field)
    if values is None:
        return None
    cached = data.__dict__.get(f"_{field}_tensor")
    if cached is None or len(cached) != len(values):
        cached = torch.as_tensor(values, dtype=torch.long)
        data.__dict__[f"_{field}_tensor"] = cached
    return cached


def collate(data: Prepared, cases: Cases, index: list[int] | np.ndarray, graph: bool = False) -> SessionBatch:
    """The batch of ``cases[index]``: right-padded to the longest prefix in it; with ``graph``, SR-GNN's session
    graphs (:func:`session_graph`, row by row, identical values)."""
    table = case_table(cases)
    index = np.asarray(index, dtype=np.int64)
    lengths = table.lengths[index]
    width = int(lengths.max())
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]
    pos = np.where(valid, table.offsets[index][:, None] + cols[None, :], 0)
    items = torch.from_numpy(np.where(valid, table.flat[pos], 0))
    mask = torch.from_numpy(valid)
    batch = SessionBatch(items, mask, torch.from_numpy(table.labels[index]))
    categories = _side_tensor(data, "item_category")
    if categories is not None:
        batch.categories = categories[items] * mask
    prices = _side_tensor(data, "item_price_level")
    if prices is not None:
        batch.prices = prices[items] * mask
    if table.ops_flat is not None and data.n_ops:
        batch.ops = torch.from_numpy(np.where(valid, table.ops_flat[pos], 0))
    if graph:
        alias_flat, n_nodes = table.graph_parts()
        alias = np.where(valid, alias_flat[pos], 0)
        n = int(n_nodes[index].max())
        rows = np.broadcast_to(np.arange(len(index))[:, None], alias.shape)
        nodes = np.zeros((len(index), n), dtype=np.int64)
        nodes[rows[valid], alias[valid]] = items.numpy()[valid]
        edges = np.zeros((len(index), n, n), dtype=np.float32)
        step = valid[:, 1:]  # consecutive clicks (a, b), each edge counted once
        edges[rows[:, 1:][step], alias[:, :-1][step], alias[:, 1:][step]] = 1.0
        indeg = edges.sum(1, keepdims=True)  # (B, 1, n): in-degree of v
        outdeg = edges.sum(2, keepdims=True)  # (B, n, 1): out-degree of u
        a_in = (edges / np.where(indeg == 0, 1, indeg)).transpose(0, 2, 1)
        a_out = edges / np.where(outdeg == 0, 1, outdeg)
        batch.nodes = torch.from_numpy(nodes)
        batch.alias = torch.from_numpy(alias)
        batch.adjacency = torch.from_numpy(np.concatenate([a_in, a_out], axis=2))
    return batch


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, chunk_batches: int = 50
) -> list[np.ndarray]:
    """Batches of a random permutation, length-bucketed: the permutation is cut into chunks of ``chunk_batches``
    batches, each chunk sorted by prefix length (stable) and cut into batches, and the batches are shuffled. Every
    case is in exactly one batch; ``chunk_batches = 0`` gives plain random batches."""
    n = len(lengths)
    order = rng.permutation(n)
    if chunk_batches <= 0:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, n, chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
