"""The ADORE controller: a lightweight scorer of every token's importance for the coming query, trained on oracle
top-K labels from the frozen LM's full attention; it decides both what to release and what to rebuild.

Features of token j at step t (all computable without its K/V, so released tokens can be scored too): the frozen LM's
input embeddings of token j and of its predecessor j-1, the embedding of the query token (release: the newest token
x_t, whose successor will attend next; rebuild: the incoming token x_t, whose own query is next), their products, and
the distance log(1 + t - j). A two-layer MLP per mode maps them to a logit; BCE against the label "j is among the
top-K keys of the target query's attention (mean over layers and heads)".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from adore.cache import ReleasableCache
from adore.decode import attention_topk
from adore.policies import Observation, Policy
from paperlab.config import require
from paperlab.data import cache_root
from paperlab.io import derived_key, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
MODES = ("release", "rebuild")
KINDS = ("mlp", "gru")


class Controller(nn.Module):
    """``score(positions, ids, step, mode) -> logits (n,)``; the LM's embedding table is copied and frozen.

    ``kind="mlp"``: the query side is the projected embedding of the query token alone. ``kind="gru"`` (the paper's
    "GRU-based controller", reconstructed: what it reads is not published): a GRU reads the projected embeddings of
    the token stream, and its state after token ``step`` is the query side, so a token's importance depends on the
    whole context so far (which key was just asked, what was said since), not only on the newest token. The token
    side (token, predecessor, log-distance) is the same in both, so :class:`SplitHead` splits either exactly."""

    def __init__(self, embedding: torch.Tensor, dim: int = 64, kind: str = "mlp") -> None:
        super().__init__()
        require(kind in KINDS, "controller.kind", kind, f"one of {list(KINDS)}")
        self.kind = kind
        self.register_buffer("emb", embedding.detach().float().cpu().clone(), persistent=True)  # runs on CPU
        e = embedding.shape[1]
        self.proj = nn.Linear(e, dim, bias=False)
        self.gru = nn.GRU(dim, dim, batch_first=True) if kind == "gru" else None
        self.heads = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(5 * dim + 1, dim), nn.GELU(), nn.Linear(dim, 1)) for m in MODES}
        )

    def _states(self, ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """``(T, d)``: the GRU's state after each token of ``ids`` (cached per ids tensor in eval mode: a decode
        loop asks once per step about the same sequence)."""
        key = (ids.data_ptr(), ids.numel(), ids._version)
        cached = getattr(self, "_cached_states", None)
        if not self.training and cached is not None and cached[0] == key:
            return cached[1]
        out = self.gru(table[ids][None])[0][0]
        if not self.training:
            self._cached_states = (key, out.detach())
        return out

    def query(self, ids: torch.Tensor, step: int, table: torch.Tensor | None = None) -> torch.Tensor:
        """``(d,)``: the query side of step ``step`` (the token's projected row, or the GRU state after it)."""
        table = self._table() if table is None else table
        if self.gru is None:
            return table[ids[step]]
        return self._states(ids, table)[step]

    def _table(self) -> torch.Tensor:
        """Projected embeddings of the whole vocabulary; cached in eval mode (a decode step only looks rows up)."""
        if self.training:
            self._cached_table = None
            return self.proj(self.emb)
        if getattr(self, "_cached_table", None) is None:
            with torch.no_grad():
                self._cached_table = self.proj(self.emb)
        return self._cached_table

    def train(self, mode: bool = True) -> Controller:
        self._cached_table = None
        self._cached_states = None
        return super().train(mode)

    def features(self, positions: torch.Tensor, ids: torch.Tensor, step: int) -> torch.Tensor:
        prev = ids[(positions - 1).clamp(min=0)]
        prev = torch.where(positions > 0, prev, torch.zeros_like(prev))
        table = self._table()
        tok, pre = table[ids[positions]], table[prev]
        query = self.query(ids, step, table).expand_as(tok)
        dist = torch.log1p((step - positions).clamp(min=0).float())[:, None]
        return torch.cat([tok, pre, query, tok * query, pre * query, dist], dim=-1)

    def score(self, positions: torch.Tensor, ids: torch.Tensor, step: int, mode: str) -> torch.Tensor:
        return self.heads[mode](self.features(positions, ids, step)).squeeze(-1)

    def score_batch(
        self, ids: torch.Tensor, steps: torch.Tensor, lengths: torch.Tensor, mode: str
    ) -> torch.Tensor:
        """``(B, L)`` logits of positions ``0 .. L-1`` (``L = lengths.max()``; row b is valid below ``lengths[b]``)
        for queries at ``steps`` of the sequences ``ids (B, T)``: :meth:`score` of every example at once. Only the
        vocabulary rows the batch uses are projected (the whole table is not recomputed per step)."""
        b, t = ids.shape
        positions = torch.arange(int(lengths.max()))[None].expand(b, -1)
        tok = ids.gather(1, positions.clamp(max=t - 1))
        prev = ids.gather(1, (positions - 1).clamp(min=0))
        prev = torch.where(positions > 0, prev, torch.zeros_like(prev))
        query = ids.gather(1, steps[:, None])
        stream = ids[:, : int(steps.max()) + 1] if self.gru is not None else ids[:, :0]
        rows, inverse = torch.unique(torch.cat([tok, prev, query, stream], dim=1), return_inverse=True)
        table = self.proj(self.emb[rows])[inverse]  # (B, 2L + 1 + stream, d)
        n = positions.shape[1]
        tok_e, pre_e = table[:, :n], table[:, n : 2 * n]
        if self.gru is None:
            q_e = table[:, 2 * n : 2 * n + 1]
        else:  # the GRU over each stream; its state after the query token (padding after it is never read)
            states = self.gru(table[:, 2 * n + 1 :])[0]
            q_e = states[torch.arange(b), steps][:, None]
        q_e = q_e.expand(-1, n, -1)
        dist = torch.log1p((steps[:, None] - positions).clamp(min=0).float())[..., None]
        feats = torch.cat([tok_e, pre_e, q_e, tok_e * q_e, pre_e * q_e, dist], dim=-1)
        return self.heads[mode](feats).squeeze(-1)

    @torch.no_grad()
    def pick_rebuild(
        self, cache: ReleasableCache, ids: torch.Tensor, step: int, limit: int, threshold: float = 0.5
    ) -> torch.Tensor:
        """Indices into the released pool of at most ``limit`` tokens predicted needed by the incoming query."""
        if cache.released_positions.numel() == 0:
            return torch.empty(0, dtype=torch.long)
        p = torch.sigmoid(self.score(cache.released_positions, ids, step, "rebuild"))
        top = torch.topk(p, min(limit, p.numel()))
        return top.indices[top.values > threshold]


class SplitHead:
    """One controller head split, exactly, into a token-side part computed once when a token enters the cache and a
    query-side part computed once per step, so that scoring ``n`` tokens costs one ``(n, 2d) x (2d, d)`` matmul.

    The head's first layer over ``[tok, pre, q, tok*q, pre*q, dist]`` is ``W_t tok + W_p pre + W_q q + (W_tq * q) tok
    + (W_pq * q) pre + w_d dist + b``: the token side is ``base = W_t tok + W_p pre + b`` and ``tp = [tok, pre]``
    (:meth:`token_side`), the query side ``[W_tq * q, W_pq * q]`` and ``W_q q`` (:meth:`logits`)."""

    def __init__(self, controller: Controller, mode: str, device: torch.device | str) -> None:
        lin1, _, lin2 = controller.heads[mode]
        d = controller.proj.out_features
        w = lin1.weight.detach().to(device)
        self.w_tok, self.w_pre, self.w_q = w[:, :d], w[:, d : 2 * d], w[:, 2 * d : 3 * d]
        self.w_tpq = torch.cat([w[:, 3 * d : 4 * d], w[:, 4 * d : 5 * d]], dim=1)  # (d, 2d)
        self.w_dist = w[:, 5 * d]
        self.b1 = lin1.bias.detach().to(device)
        self.w2, self.b2 = lin2.weight.detach()[0].to(device), lin2.bias.detach()[0].to(device)
        self.d = d

    def token_side(self, tok: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """``(..., d)`` token and predecessor rows of the projected table -> ``base (..., d)``."""
        return tok @ self.w_tok.T + pre @ self.w_pre.T + self.b1

    def logits(
        self, base: torch.Tensor, tp: torch.Tensor, query: torch.Tensor, dist: torch.Tensor
    ) -> torch.Tensor:
        """``base (n, d)``, ``tp (n, 2d)``, ``query (d,)`` (projected row of the query token), ``dist (n,)`` the
        log-distance -> ``(n,)`` logits, equal to :meth:`Controller.score` up to float rounding."""
        side = self.w_tpq * query.repeat(2)[None, :]  # (d, 2d)
        h = torch.addmm(base, tp, side.T)  # the one matmul of a step
        h.add_(self.w_q @ query).addr_(dist, self.w_dist)
        return F.gelu(h) @ self.w2 + self.b2


@dataclass
class AdorePolicy(Policy):
    """Release by the controller's ``release`` head (sinks and the newest token always kept)."""

    controller: Controller | None = None
    name = "adore"
    sinks: int = 1

    def score(self, obs: Observation) -> torch.Tensor:
        with torch.no_grad():
            return self.controller.score(obs.positions, obs.extra["ids"], obs.step, "release")


@dataclass
class ControllerConfig:
    dim: int = 64
    top_k: int = 4  # label: the top-K keys of the target query's attention
    sequences: int = 256
    epochs: int = 4
    lr: float = 3e-3
    seed: int = 0
    batch_size: int = 1  # examples (query steps) per optimizer step; the paper configs batch 32
    kind: str = "mlp"  # "gru": the query side is a GRU over the token stream (Controller docstring)
    checkpoint_every: int = 2000  # optimizer steps between checkpoints; 0: only at the end

    def __post_init__(self) -> None:
        require(self.top_k >= 1, "top_k", self.top_k, ">= 1")
        require(self.sequences >= 1, "sequences", self.sequences, ">= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        require(self.kind in KINDS, "kind", self.kind, f"one of {list(KINDS)}")
        require(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")


def controller_checkpoint(origin: dict[str, Any], controller: ControllerConfig, inputs: Any = ()) -> Path:
    """The controller's training state, keyed by its settings (not ``checkpoint_every``, which does not change it),
    by ``origin`` (what its LM and training sequences are derived from) and by the ``inputs`` files."""
    from dataclasses import asdict

    settings = {k: v for k, v in asdict(controller).items() if k != "checkpoint_every"}
    key = derived_key({"origin": origin, "controller": settings}, inputs)
    return cache_root() / "adore" / f"controller-{key}.pt"


def oracle_labels(attn: torch.Tensor, t_target: int, top_k: int) -> torch.Tensor:
    """``(t_target,)`` 0/1: the top-K keys among positions < t_target of query ``t_target``'s attention."""
    row = attn[t_target, :t_target]
    labels = torch.zeros(t_target)
    labels[torch.topk(row, min(top_k, t_target)).indices] = 1.0
    return labels


def labels_from_topk(table: torch.Tensor, t_target: int) -> torch.Tensor:
    """:func:`oracle_labels` from the ``(T, K)`` table of :func:`adore.decode.attention_topk`."""
    labels = torch.zeros(t_target)
    keys = table[t_target]
    labels[keys[keys >= 0]] = 1.0
    return labels


@dataclass
class Examples:
    """The controller's training examples: for sequence ``seq`` and step ``t``, mode ``release`` labels the top-K
    keys of query ``t + 1`` over positions ``<= t`` (the token the next query may need, before it arrives: the label
    horizon is one step), mode ``rebuild`` those of query ``t`` over positions ``< t``. ``topk[seq]`` holds each
    query's top-K keys (:func:`adore.decode.attention_topk`), all that is kept of the attention maps."""

    sequences: list[torch.Tensor]  # S sequences of ids (lengths may differ)
    topk: list[torch.Tensor]  # S x (T, K)
    index: list[tuple[int, int, str]]  # (seq, t, mode)

    def __len__(self) -> int:
        return len(self.index)

    def target(self, i: int) -> int:
        _, t, mode = self.index[i]
        return t + 1 if mode == "release" else t

    def labels(self, i: int) -> torch.Tensor:
        seq, _, _ = self.index[i]
        return labels_from_topk(self.topk[seq], self.target(i))


def collect(model: Any, sequences: Any, top_k: int) -> Examples:
    """Every ``(sequence, step, mode)`` example of ``sequences`` (a ``(S, T)`` tensor or a list of 1-D id tensors)
    with its oracle top-K table (one streamed forward per sequence, :func:`adore.decode.attention_topk`)."""
    tables, index = [], []
    for s, ids in enumerate(sequences):
        tables.append(attention_topk(model, ids, top_k))
        for t in range(1, ids.numel() - 1):
            index += [(s, t, "release"), (s, t, "rebuild")]
    return Examples([ids.cpu() for ids in sequences], tables, index)


def batch_loss(controller: Controller, examples: Examples, chosen: list[int]) -> torch.Tensor:
    """Mean over ``chosen`` examples of each one's BCE over its positions, positives weighted by
    ``negatives / positives`` (so the K positives weigh as much as the rest of the row)."""
    total = torch.zeros(())
    for mode in MODES:
        group = [i for i in chosen if examples.index[i][2] == mode]
        if not group:
            continue
        ids = torch.nn.utils.rnn.pad_sequence([examples.sequences[examples.index[i][0]] for i in group], True)
        steps = torch.tensor([examples.index[i][1] for i in group])
        lengths = torch.tensor([examples.target(i) for i in group])
        logits = controller.score_batch(ids, steps, lengths, mode)
        for row, i in enumerate(group):
            labels = examples.labels(i)
            pos_weight = (labels.numel() - labels.sum()) / labels.sum().clamp(min=1)
            loss = F.binary_cross_entropy_with_logits(
                logits[row, : labels.numel()], labels, pos_weight=pos_weight
            )
            total = total + loss
    return total / len(chosen)


def train_controller(
    model: Any,
    sequences: torch.Tensor,
    cfg: ControllerConfig,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> Controller:
    """Fit the controller on oracle labels (the LM stays frozen), ``cfg.batch_size`` examples per optimizer step.

    ``checkpoint``: the training state (controller, optimizer, step, running loss, RNG), saved atomically every
    ``cfg.checkpoint_every`` optimizer steps and at the end; a call that finds it resumes (an interrupted run ends
    with the same weights, bit for bit, as an uninterrupted one), or, when it is finished, just loads the controller.
    The caller keys the file by everything the controller is derived from (:func:`paperlab.io.derived_key`)."""
    torch.manual_seed(cfg.seed)
    controller = Controller(model.get_input_embeddings().weight, cfg.dim, cfg.kind)
    opt = torch.optim.Adam(controller.parameters(), lr=cfg.lr)
    start, total = 0, 0.0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model=controller, optimizer=opt)
        start, total = state["step"], state["extra"]["loss_sum"]
        if start >= state["extra"]["steps_per_epoch"] * cfg.epochs:
            log.info("controller loaded from %s", checkpoint)
            return controller.eval()
    examples = collect(model, sequences, cfg.top_k)
    n = len(examples)
    b = cfg.batch_size
    per_epoch = -(-n // b)
    if start:
        log.info("controller: resumed from %s at step %d of %d", checkpoint, start, per_epoch * cfg.epochs)
    g = torch.Generator().manual_seed(cfg.seed)
    orders = [torch.randperm(n, generator=g).tolist() for _ in range(cfg.epochs)]  # the epochs' shuffles
    step = start
    for epoch in range(start // per_epoch, cfg.epochs):
        first = step - epoch * per_epoch  # batches of this epoch already done (resumed mid-epoch)
        batches = [orders[epoch][i : i + b] for i in range(first * b, n, b)]
        for chosen in tqdm(batches, desc=f"controller epoch {epoch + 1}", disable=not progress, leave=False):
            loss = batch_loss(controller, examples, chosen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            step += 1
            if step % per_epoch == 0:
                log.info("controller epoch %d: BCE %.4f", epoch + 1, total / per_epoch)
                total = 0.0
            every = cfg.checkpoint_every
            if checkpoint is not None and (step == per_epoch * cfg.epochs or (every and step % every == 0)):
                extra = {"loss_sum": total, "steps_per_epoch": per_epoch}
                save_checkpoint(checkpoint, model=controller, optimizer=opt, step=step, extra=extra)
    return controller.eval()


@torch.no_grad()
def recall_at_k(scorer: Any, model: Any, sequences: torch.Tensor, top_k: int, mode: str = "rebuild") -> float:
    """Mean fraction of the oracle top-K recovered by ``scorer``'s top-K (``scorer(positions, ids, t) -> scores``)."""
    hits, total = 0.0, 0
    for ids in sequences:
        table = attention_topk(model, ids, top_k)
        for t in range(top_k + 1, ids.numel() - 1):
            target = t if mode == "rebuild" else t + 1
            labels = labels_from_topk(table, target)
            positions = torch.arange(labels.numel())
            chosen = torch.topk(scorer(positions, ids, t), top_k).indices
            hits += float(labels[chosen].sum()) / top_k
            total += 1
    return hits / total
