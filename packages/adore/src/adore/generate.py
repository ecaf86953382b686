"""``model.generate(..., past_key_values=AdoreCache(model, controller, budget=..., rebuild=...))``, fast by design.

:class:`AdoreCache` is a ``transformers`` :class:`~transformers.cache_utils.Cache` that drives release and rebuild
itself, so the stock ``generate`` loop (greedy, sampling, EOS stopping, batch > 1 with left padding) runs ADORE
unchanged. What a decode step costs:

- **fixed slot buffers** per layer, ``(batch, kv_heads, capacity, head_dim)`` with capacity ``max(prompt, budget + R
  + 1)`` (allocated once after the prompt); a forward writes its tokens into the next free slots and attends over a
  view of the used ones; a release moves the surviving tokens above the new size into the freed slots
  (``index_copy_`` of the few moved tokens, never a compaction of the whole cache);
- **positions, ids, controller features and the released pool live on the model's device** (the pool in
  amortised growing buffers, per sequence); the controller's heads are split (:class:`~adore.controller.SplitHead`):
  the token side is computed once when a token enters the cache, so scoring the pool costs one small matmul;
- **a step without a rebuild runs mask-free** (SDPA with no mask: its fast kernels; slot order does not matter to
  attention since RoPE is applied before caching and every cached key precedes the query); the prompt runs through
  the model's own causal path (``is_causal``, no n x n mask); only a step that rebuilds (the rebuilt tokens sit at
  their ORIGINAL positions, in the same forward as the new token, sec. 3 of the paper) or a padded batch carries a
  small boolean mask ``(batch, 1, q, slots)``;
- **batch > 1**: each sequence keeps its own tokens (``budget`` may be one number or one per sequence).

Host synchronisation: one per step when rebuild is on (how many tokens passed the threshold decides the forward's
length), none otherwise. Flash-attention 2/3 and flex attention are refused (they take no boolean slot mask here).
``get_seq_length()`` returns the number of columns ``generate`` has fed. Use it as a context manager (or call
:meth:`AdoreCache.close`) to remove the two hooks it registers on the decoder stack.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import torch
from transformers.cache_utils import Cache

from adore.controller import AdorePolicy, Controller, SplitHead
from adore.decode import DecodeConfig, check_model, rebuild_groups
from adore.policies import Observation, Policy
from adore.slots import Pool, SlotLayer

SUPPORTED_ATTENTION = ("sdpa", "eager")


class AdoreCache(Cache):
    """A self-driving releasable cache for ``model.generate``.

    ``controller``: a trained :class:`~adore.controller.Controller` (needed for ``rebuild > 0`` and for the default
    release policy); ``policy``: any policy whose scores need no attention weights (window, StreamingLLM, random);
    ``budget``: tokens kept per sequence (an int, or one per sequence); ``threshold``: a released token is rebuilt
    when the rebuild head's probability exceeds it (``None``: always the top R, the benchmark's worst case);
    ``score_every = k > 1``: the whole released pool is scored every k-th step only, and the steps between score
    its ``shortlist`` best tokens of that step plus every token released since (``1``: the whole pool every step,
    exact; the default).
    """

    def __init__(
        self,
        model: Any,
        controller: Controller | None = None,
        *,
        budget: int | list[int],
        rebuild: int = 0,
        rebuild_context: int = 1,
        sinks: int = 1,
        recent: int = 1,
        policy: Policy | None = None,
        release_every: int = 1,
        threshold: float | None = 0.5,
        score_every: int = 1,
        shortlist: int = 64,
    ) -> None:
        super().__init__(layer_class_to_replicate=None, layers=[])
        check_model(model)
        attn = getattr(model.config, "_attn_implementation", "eager") or "eager"
        if attn not in SUPPORTED_ATTENTION:
            raise ValueError(
                f"AdoreCache supports attn_implementation 'sdpa' or 'eager', got {attn!r}: slots hold tokens out of "
                "position order and a rebuild step needs a boolean mask over them, which this path does not pass to "
                f"{attn}; reload the model with attn_implementation='sdpa'"
            )
        budgets = [budget] if isinstance(budget, int) else list(budget)
        self.configs = [
            DecodeConfig(
                budget=b,
                sinks=sinks,
                recent=recent,
                rebuild=rebuild,
                rebuild_context=rebuild_context,
                release_every=release_every,
            )
            for b in budgets
        ]
        self.config = self.configs[0]
        if policy is None:
            if controller is None:
                raise ValueError("AdoreCache needs a controller (or an explicit release policy)")
            policy = AdorePolicy(controller=controller, sinks=sinks)
        if policy.needs_attention:
            raise ValueError(
                f"policy {policy.name!r} reads attention weights; inside generate() use an id-only policy "
                "(adore, streaming_llm, window, random) or the manual loop adore.decode.run_sequence"
            )
        if rebuild and controller is None:
            raise ValueError("rebuild > 0 needs a controller to choose the tokens to rebuild")
        self.model = model
        self.controller, self.policy = controller, policy
        self.sinks = max(sinks, getattr(policy, "sinks", 0))
        self.threshold = threshold
        if score_every < 1 or shortlist < 1:
            raise ValueError(f"score_every and shortlist must be >= 1, got {score_every} and {shortlist}")
        self.score_every, self.shortlist = score_every, shortlist
        self.device = next(model.parameters()).device
        self._dtype = next(model.parameters()).dtype
        self._eager = attn == "eager"
        self.layers = [SlotLayer(self) for _ in range(model.config.num_hidden_layers)]
        self.slot_capacity = max(budgets) + rebuild + 1  # the fixed slots: budget + R + the new token
        self.capacity = self.slot_capacity
        self.used = 0  # slots in use (the same for every sequence; unused rows are marked invalid)
        self.columns = 0  # columns generate has fed (its view of the sequence length)
        self.batch: int | None = None
        self.rebuilt_rows: list[list[list[int]]] = []  # per forward, per sequence: positions rebuilt
        self.max_in_forward = 0
        self.masked_forwards = 0  # forwards that carried a mask (rebuild steps, padded batches)
        self.forwards = 0
        self._pending: int | None = None
        self._invalid = False  # some used slot holds no real token (padding, or a short sequence)
        self._heads: dict[str, SplitHead] = {}
        self._gru = None  # a GRU controller's recurrent query side, carried per sequence (:meth:`_query`)
        if controller is not None:
            self._table = controller._table().detach().to(self.device)
            self._heads = {m: SplitHead(controller, m, self.device) for m in ("release", "rebuild")}
            if controller.gru is not None:
                self._gru = copy.deepcopy(controller.gru).to(self.device).eval()
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
        self._handles = [
            decoder.register_forward_pre_hook(self._before, with_kwargs=True),
            decoder.register_forward_hook(self._after, with_kwargs=True),
        ]

    # -- generate's view: every column fed, not what is kept ----------------------------------------------------
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.columns

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return self.used

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.used + query_length, 0

    @property
    def seen(self) -> int:
        """Tokens seen by sequence 0 (kept + released)."""
        return int(self.next_pos[0]) if self.batch else 0

    @property
    def size(self) -> int:
        """Tokens kept by sequence 0."""
        return int(self.valid[0, : self.used].sum()) if self.batch else 0

    @property
    def positions(self) -> torch.Tensor:
        """Positions kept by sequence 0, ascending."""
        return self.pos[0, : self.used][self.valid[0, : self.used]].sort().values.cpu()

    @property
    def released_positions(self) -> torch.Tensor:
        """Positions released (and not rebuilt) by sequence 0, ascending."""
        p = self.pools[0]
        return p.pos[: p.n][p.alive[: p.n]].sort().values.cpu()

    @property
    def released_ids(self) -> torch.Tensor:
        p = self.pools[0]
        return p.ids[: p.n][p.alive[: p.n]].cpu()

    @property
    def rebuilt(self) -> list[list[int]]:
        """Positions rebuilt by sequence 0, per forward."""
        return [r[0] for r in self.rebuilt_rows]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> AdoreCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- state ----------------------------------------------------------------------------------------------------
    def _start(self, batch: int, prompt: int) -> None:
        if len(self.configs) == 1:
            self.configs = self.configs * batch
        if len(self.configs) != batch:
            raise ValueError(f"AdoreCache: {len(self.configs)} budgets for a batch of {batch}")
        self.batch = batch
        self.capacity = max(self.capacity, prompt)
        dev, cap = self.device, self.capacity
        self.pos = torch.zeros(batch, cap, dtype=torch.long, device=dev)
        self.ids = torch.zeros(batch, cap, dtype=torch.long, device=dev)
        self.valid = torch.zeros(batch, cap, dtype=torch.bool, device=dev)
        d = self.controller.proj.out_features if self.controller is not None else 0
        self.feat_dim = 4 * d  # [tok, pre] (2d), release base (d), rebuild base (d)
        self.feats = torch.zeros(batch, cap, self.feat_dim, device=dev)
        self.hist = [torch.zeros(max(64, prompt), dtype=torch.long, device=dev) for _ in range(batch)]
        self.next_pos = [0] * batch
        self.counts = [0] * batch  # valid slots per sequence
        self.pools = [Pool(dev, self.feat_dim) for _ in range(batch)]
        self._short: list[tuple[torch.Tensor, int] | None] = [None] * batch  # (shortlist, pool size then)
        self._steps = [0] * batch
        self._h = [
            torch.zeros(1, 1, d, device=dev) for _ in range(batch)
        ]  # GRU state after position _read - 1
        self._read = [0] * batch

    def _history(self, row: int, pos: torch.Tensor, ids: torch.Tensor) -> None:
        """Book token ids by position (what a later token's predecessor feature reads)."""
        need = int(self.next_pos[row]) + 1
        if need > self.hist[row].numel():
            new = self.hist[row].new_zeros(max(2 * self.hist[row].numel(), need))
            new[: self.hist[row].numel()] = self.hist[row]
            self.hist[row] = new
        self.hist[row][pos] = ids

    def _features(self, row: int, pos: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if not self._heads:
            return torch.zeros(pos.numel(), 0, device=self.device)
        prev = torch.where(pos > 0, self.hist[row][(pos - 1).clamp(min=0)], torch.zeros_like(pos))
        tok, pre = self._table[ids], self._table[prev]
        return torch.cat(
            [
                tok,
                pre,
                self._heads["release"].token_side(tok, pre),
                self._heads["rebuild"].token_side(tok, pre),
            ],
            -1,
        )

    def _query(self, row: int, step: int, query_id: torch.Tensor) -> torch.Tensor:
        """The controller's query side at position ``step`` (token ``query_id``): its projected row, or for a GRU
        controller the state after reading the sequence up to it. The GRU's state is carried per sequence and
        advanced over the booked positions ``< step`` once (one cell step per new token); the query token itself
        is read from that state without committing it."""
        if self._gru is None:
            return self._table[query_id]
        if self._read[row] < step:
            x = self._table[self.hist[row][self._read[row] : step]][None]
            self._h[row] = self._gru(x, self._h[row])[1]
            self._read[row] = step
        return self._gru(self._table[query_id].reshape(1, 1, -1), self._h[row])[0][0, 0]

    def _score(self, mode: str, feats: torch.Tensor, pos: torch.Tensor, step: int, query: torch.Tensor):
        head = self._heads[mode]
        d = head.d
        base = feats[:, 2 * d : 3 * d] if mode == "release" else feats[:, 3 * d :]
        dist = torch.log1p((step - pos).clamp(min=0).float())
        return head.logits(base, feats[:, : 2 * d], query, dist)

    # -- rebuild: choose released tokens for the coming forward ------------------------------------------------------
    def _pick(self, row: int, step: int, query_id: torch.Tensor) -> torch.Tensor:
        """Pool indices to rebuild before the token at position ``step`` (best first, each with up to
        ``rebuild_context`` released left neighbours, at most R in all); the one host sync of a step."""
        cfg, pool = self.configs[row], self.pools[row]
        if not cfg.rebuild or pool.n == 0:
            return torch.empty(0, dtype=torch.long, device=self.device)
        cand = None  # None: the whole pool
        query = self._query(row, step, query_id)
        if self.score_every > 1:
            short, self._steps[row] = self._short[row], self._steps[row] + 1
            if short is not None and (self._steps[row] - 1) % self.score_every:
                since = torch.arange(short[1], pool.n, device=self.device)
                cand = torch.cat([short[0], since])
        if cand is None:
            logits = self._score("rebuild", pool.feats[: pool.n], pool.pos[: pool.n], step, query)
            logits = logits.masked_fill(~pool.alive[: pool.n], float("-inf"))
            if self.score_every > 1:
                best = torch.topk(logits, min(self.shortlist, pool.n)).indices
                self._short[row] = (best, pool.n)
            index = None
        else:
            logits = self._score("rebuild", pool.feats[cand], pool.pos[cand], step, query)
            logits = logits.masked_fill(~pool.alive[cand], float("-inf"))
            index = cand
        top = torch.topk(logits, min(cfg.rebuild, logits.numel()))
        if index is not None:
            top = torch.return_types.topk((top.values, index[top.indices]))
        bar = float("-inf") if self.threshold is None else float(torch.logit(torch.tensor(self.threshold)))
        ok = (top.values > bar) & torch.isfinite(top.values)
        picked = top.indices[ok]
        if picked.numel() == 0 or not cfg.rebuild_context:
            return picked
        ctx = cfg.rebuild_context
        at = pool.pos[picked][:, None] - torch.arange(1, ctx + 1, device=self.device)[None, :]  # (k, ctx)
        left = torch.where(at >= 0, pool.where[at.clamp(min=0)], torch.full_like(at, -1))
        # released left neighbours, nearest first, up to the first one still cached (-1)
        near = [list(itertools.takewhile(lambda j: j >= 0, row)) for row in left.tolist()]
        chosen = rebuild_groups(picked.tolist(), near, cfg.rebuild)
        return torch.tensor(chosen, dtype=torch.long, device=self.device)

    # -- hooks ------------------------------------------------------------------------------------------------------
    def _mine(self, kwargs: dict[str, Any]) -> bool:
        return kwargs.get("cache") is self or kwargs.get("past_key_values") is self

    def _before(self, module: Any, args: tuple, kwargs: dict[str, Any]):
        if not self._mine(kwargs):
            return None
        input_ids = kwargs.get("input_ids")
        if input_ids is None and args:
            input_ids, args = args[0], args[1:]
        if input_ids is None:
            raise ValueError(
                "AdoreCache needs input_ids (not inputs_embeds): release and rebuild work on token ids"
            )
        b, q_new = input_ids.shape
        if self.batch is None:
            self._start(b, q_new)
        elif b != self.batch:
            raise ValueError(f"AdoreCache was started with batch {self.batch}, got {b}")
        mask2d = kwargs.get("attention_mask")
        real = None  # which new columns hold real tokens (left padding); generate's decode columns always do
        if isinstance(mask2d, torch.Tensor) and mask2d.dim() == 2 and (self.columns == 0 or q_new > 1):
            real = mask2d[:, -q_new:].to(self.device, torch.bool)
            if bool(real.all()):
                real = None
            else:
                self._invalid = True
        ids_new = input_ids.to(self.device)
        rows_ids, rows_pos, rows_valid, rebuilt = [], [], [], []
        for row in range(b):
            ok = real[row] if real is not None else torch.ones(q_new, dtype=torch.bool, device=self.device)
            n_real = int(ok.sum()) if real is not None else q_new
            start = self.next_pos[row]
            pos = torch.zeros(q_new, dtype=torch.long, device=self.device)
            pos[ok] = torch.arange(start, start + n_real, device=self.device)
            self.next_pos[row] = start + n_real
            self._history(row, pos[ok], ids_new[row][ok])
            pick = torch.empty(0, dtype=torch.long, device=self.device)
            if q_new == 1 and n_real == 1 and self.used:  # decode steps only (nothing is released before)
                pick = self._pick(row, start, ids_new[row, 0])
            pool = self.pools[row]
            if pick.numel():
                pool.take(pick)
                order = torch.argsort(pool.pos[pick])
                pick = pick[order]
            rebuilt.append(pool.pos[pick].tolist() if pick.numel() else [])
            self.counts[row] += pick.numel() + n_real
            rows_ids.append(torch.cat([pool.ids[pick], ids_new[row]]))
            rows_pos.append(torch.cat([pool.pos[pick], pos]))
            rows_valid.append(torch.cat([torch.ones(pick.numel(), dtype=torch.bool, device=self.device), ok]))
        width = max(r.numel() for r in rows_ids)
        if any(r.numel() < width for r in rows_ids):  # unequal rebuilds: pad in front with invalid queries
            self._invalid = True
            for i in range(b):
                k = width - rows_ids[i].numel()
                z = torch.zeros(k, dtype=torch.long, device=self.device)
                rows_ids[i] = torch.cat([z, rows_ids[i]])
                rows_pos[i] = torch.cat([z, rows_pos[i]])
                rows_valid[i] = torch.cat(
                    [torch.zeros(k, dtype=torch.bool, device=self.device), rows_valid[i]]
                )
        q_ids, q_pos, q_valid = torch.stack(rows_ids), torch.stack(rows_pos), torch.stack(rows_valid)
        n = self.used
        if (
            n + width > self.capacity
        ):  # a long chunk after the prompt (e.g. a question): grow, shrink after release
            self._resize(n + width)
        self.pos[:, n : n + width] = q_pos
        self.ids[:, n : n + width] = q_ids
        self.valid[:, n : n + width] = q_valid
        if self.feat_dim:
            for row in range(b):
                self.feats[row, n : n + width] = self._features(row, q_pos[row], q_ids[row])
        self.rebuilt_rows.append(rebuilt)
        rebuilding = any(rebuilt)
        self._pending = width
        self._new_columns = q_new
        self.max_in_forward = max(self.max_in_forward, n + width)
        self.forwards += 1
        kwargs = dict(kwargs)
        kwargs["input_ids"] = q_ids
        kwargs["position_ids"] = q_pos
        if rebuilding or self._invalid:
            self.masked_forwards += 1
            kpos, kvalid = self.pos[:, : n + width], self.valid[:, : n + width]
            allowed = kvalid[:, None, :] & (kpos[:, None, :] <= q_pos[:, :, None])
            if width > 1 and n == 0:  # the prompt: causal in slot order too (ties of padded positions)
                slot = torch.arange(width, device=self.device)
                allowed &= slot[None, None, :] <= slot[None, :, None]
            own = torch.arange(n, n + width, device=self.device)
            allowed[:, torch.arange(width), own] = True  # every query sees itself (padded queries too)
            mask = allowed[:, None]
            if self._eager:  # eager attention adds the mask: 0 where allowed, the dtype's minimum elsewhere
                mask = torch.zeros(mask.shape, dtype=self._dtype, device=self.device).masked_fill_(
                    ~mask, torch.finfo(self._dtype).min
                )
            kwargs["attention_mask"] = mask
        else:
            kwargs["attention_mask"] = None  # mask-free: SDPA's own causal prefill / no mask at all
        return args, kwargs

    def _after(self, module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        if not self._mine(kwargs) or self._pending is None:
            return
        self.used += self._pending
        self.columns += self._new_columns
        self._pending = None
        self._release()
        if self.capacity > self.slot_capacity and self.used + 1 + self.config.rebuild <= self.slot_capacity:
            self._resize(self.slot_capacity)  # after the prompt: the fixed slots, budget + R + 1

    def _resize(self, capacity: int) -> None:
        for layer in self.layers:
            if layer.is_initialized:
                layer.resize(capacity)
        keep = min(capacity, self.capacity)
        for name in ("pos", "ids", "valid", "feats"):
            old = getattr(self, name)
            new = old.new_zeros(old.shape[0], capacity, *old.shape[2:])
            new[:, :keep] = old[:, :keep]
            setattr(self, name, new)
        self.capacity = capacity

    # -- release ------------------------------------------------------------------------------------------------------
    def _release(self) -> None:
        n = self.used
        targets = []
        for row in range(self.batch):
            cfg = self.configs[row]
            targets.append(cfg.budget - cfg.release_every + 1 if self.counts[row] > cfg.budget else None)
        if all(t is None for t in targets):
            return
        new_used = 0
        keeps = []
        for row in range(self.batch):
            cfg = self.configs[row]
            valid = self.valid[row, :n]
            target = targets[row] if targets[row] is not None else self.counts[row]
            scores = self._release_scores(row, n).masked_fill(~valid, float("-inf"))
            pos = self.pos[row, :n]
            newest = self.next_pos[row] - 1
            forced = valid & (
                (pos < self.sinks) | (pos > newest - self.policy.recent_tokens(cfg.budget, cfg.recent))
            )
            scores = torch.where(forced, torch.full_like(scores, float("inf")), scores)
            k = min(target, self.counts[row])
            keep = (
                torch.topk(scores, k).indices if k else torch.empty(0, dtype=torch.long, device=self.device)
            )
            keeps.append(keep)
            new_used = max(new_used, k)
        for row, keep in enumerate(keeps):
            self._keep(row, keep, n, new_used)
        self.used = new_used
        self._invalid = any(c < new_used for c in self.counts)

    def _release_scores(self, row: int, n: int) -> torch.Tensor:
        pos, ids = self.pos[row, :n], self.ids[row, :n]
        step = self.next_pos[row] - 1
        if isinstance(self.policy, AdorePolicy) and self._heads:
            query = self._query(row, step, self.hist[row][step])
            return self._score("release", self.feats[row, :n], pos, step, query)
        obs = Observation(pos.cpu(), ids.cpu(), step=step, extra={"ids": self.hist[row].cpu()})
        return self.policy.score(obs).to(self.device).float()

    def _keep(self, row: int, keep: torch.Tensor, n: int, new_used: int) -> None:
        """Keep slots ``keep`` of sequence ``row``: released valid slots go to the pool; survivors above
        ``len(keep)`` move into the freed slots below it (``index_copy_``)."""
        k = keep.numel()
        kept = torch.zeros(n, dtype=torch.bool, device=self.device)
        kept[keep] = True
        gone = ~kept & self.valid[row, :n]
        idx = torch.nonzero(gone).flatten()
        self.pools[row].append(self.pos[row, idx], self.ids[row, idx], self.feats[row, idx])
        holes = torch.nonzero(~kept[:k]).flatten()
        movers = torch.nonzero(kept[k:]).flatten() + k
        if holes.numel():
            for layer in self.layers:
                layer.move(row, holes, movers)
            for buf in (self.pos, self.ids, self.valid, self.feats):
                buf[row].index_copy_(0, holes, buf[row].index_select(0, movers))
        self.valid[row, k:] = False
        self.counts[row] = k
