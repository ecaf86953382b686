"""The decode loop with release and rebuild (teacher-forced, batch 1), explicit positions and a custom mask.

Per step: (1) the controller (if any) picks up to ``rebuild`` released tokens to rebuild; (2) one forward feeds the
rebuilt tokens (at their ORIGINAL positions, RoPE positions preserved) together with the new token, under a mask in
which every query sees exactly the keys at positions <= its own; (3) the policy scores the cached tokens and the cache
keeps the ``budget`` best. The cache therefore never holds more than ``budget + rebuild + 1`` tokens during a forward
and ``budget`` after it. With ``budget >= sequence length`` nothing is released and the loop equals the full cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from adore.cache import ReleasableCache
from adore.policies import FullCache, Observation, Policy, select
from paperlab.config import require

SUPPORTED_FAMILIES = ("llama", "qwen2", "mistral")


@dataclass
class DecodeConfig:
    """budget: tokens kept after each step; sinks / recent: always kept; rebuild: R, released tokens rebuilt per
    step (needs a controller); prefill: prompt tokens processed in one forward before token-by-token decoding."""

    budget: int = 32
    sinks: int = 0
    recent: int = 1
    rebuild: int = 0
    prefill: int = 1
    release_every: int = 1  # release in chunks: down to budget - release_every + 1, every release_every steps
    rebuild_context: int = 0  # also rebuild up to this many released left neighbours of each picked token

    def __post_init__(self) -> None:
        require(self.budget >= 1, "budget", self.budget, ">= 1")
        require(self.sinks >= 0 and self.recent >= 1, "recent", self.recent, ">= 1 (the newest token stays)")
        require(self.rebuild >= 0, "rebuild", self.rebuild, ">= 0")
        require(
            self.budget >= self.sinks + self.recent + self.rebuild,
            "budget",
            self.budget,
            f">= sinks + recent + rebuild = {self.sinks + self.recent + self.rebuild}",
        )
        require(self.prefill >= 1, "prefill", self.prefill, ">= 1")
        require(self.rebuild_context >= 0, "rebuild_context", self.rebuild_context, ">= 0")
        require(
            1 <= self.release_every <= self.budget - self.sinks - self.recent - self.rebuild + 1,
            "release_every",
            self.release_every,
            "in [1, budget - sinks - recent - rebuild + 1]",
        )


def check_model(model: Any) -> None:
    family = getattr(model.config, "model_type", "?")
    if family not in SUPPORTED_FAMILIES:
        raise ValueError(
            f"model family {family!r} is not supported; expected one of {', '.join(SUPPORTED_FAMILIES)}"
        )


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """``{"cache": cache}`` on transformers versions whose forward takes ``cache`` (5.24+), else
    ``{"past_key_values": cache}``."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return {"cache": cache} if "cache" in params else {"past_key_values": cache}


def causal_mask(
    key_positions: torch.Tensor, query_positions: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Additive mask ``(1, 1, q, k)``: 0 where key position <= query position, else -inf."""
    allowed = key_positions[None, :] <= query_positions[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


def pooled_attention(attentions: tuple[torch.Tensor, ...], rows: slice | int = -1) -> torch.Tensor:
    """Mean over layers and heads of the attention rows ``rows`` (default: the newest query) -> ``(k,)``."""
    stacked = torch.stack([a[0, :, rows].float().cpu() for a in attentions])  # (layers, heads, [q,] k)
    while stacked.dim() > 1:
        stacked = stacked.mean(0)
    return stacked


@torch.no_grad()
def attention_layers(model: Any) -> list[torch.nn.Module]:
    """The self-attention module of every decoder layer (Llama / Qwen2 / Mistral layout)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    layers = getattr(decoder, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise ValueError(f"{type(model).__name__}: expected decoder layers with a self_attn module")
    return [layer.self_attn for layer in layers]


@torch.no_grad()
def attention_sum(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """``(T, T)`` fp32 on the model's device: the sum over layers and heads of the full-cache attention of ``ids``.

    Streamed: a hook on each layer's attention adds that layer's head-sum into one accumulator and drops the weights,
    so at most one layer's ``(heads, T, T)`` exists at a time; ``output_attentions`` keeps all of them (a 7B Llama at
    4k: 32 layers x (32, 4096, 4096), 32 GiB in bf16 on the GPU, 128 GiB once stacked in fp32 on the host). Needs
    eager attention (the fused kernels return no weights)."""
    device = next(model.parameters()).device
    n = ids.numel()
    total = torch.zeros(n, n, dtype=torch.float32, device=device)
    seen = [0]

    def add(module: Any, args: Any, output: Any) -> Any:
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise ValueError(
                "the attention map needs the attention weights: load the model with attn_implementation='eager'"
            )
        total.add_(weights[0].float().sum(0))
        seen[0] += 1
        return (output[0], None, *output[2:])

    handles = [m.register_forward_hook(add, prepend=True) for m in attention_layers(model)]
    try:
        model(ids[None].to(device), use_cache=False, logits_to_keep=1)
    finally:
        for h in handles:
            h.remove()
    return total


def full_attention_map(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """``(T, T)`` on the CPU: row t = attention of query t over positions (mean over layers and heads), full cache;
    streamed layer by layer (:func:`attention_sum`)."""
    heads = model.config.num_attention_heads
    layers = len(attention_layers(model))
    return (attention_sum(model, ids) / (layers * heads)).cpu()


@torch.no_grad()
def attention_topk(model: Any, ids: torch.Tensor, top_k: int) -> torch.Tensor:
    """``(T, top_k)`` long on the CPU: row t = the ``top_k`` keys at positions < t with the most attention from
    query t (mean over layers and heads), best first; ``-1`` where t < top_k leaves fewer keys. All that the
    controller's labels need: the ``(T, T)`` map stays on the model's device and only this table leaves it."""
    total = attention_sum(model, ids)
    n = total.shape[0]
    earlier = torch.ones(n, n, dtype=torch.bool, device=total.device).tril(-1)
    total.masked_fill_(~earlier, float("-inf"))
    k = min(top_k, n)
    values, index = torch.topk(total, k, dim=-1)
    index = index.masked_fill(values == float("-inf"), -1).cpu()
    if k < top_k:
        index = torch.cat([index, index.new_full((n, top_k - k), -1)], dim=1)
    return index


def rebuild_groups(picked: list[int], neighbours: list[list[int]], limit: int) -> list[int]:
    """The pool indices to rebuild, at most ``limit``: each pick (best first) with its released left neighbours
    (``neighbours[i]``, nearest first), a group taken whole or skipped when it no longer fits (a group alone is cut
    to ``limit``). A token rebuilt without the released context its pick brings gets K/V unlike full attention's
    (a value token without its key), and a wrong rebuilt token is worse than none (recall at 25 %: 95.0 with cut
    groups, 96.3 with whole ones; README)."""
    chosen: list[int] = []
    for i, near in zip(picked, neighbours, strict=True):
        group = [j for j in [i, *near][:limit] if j not in chosen]
        if len(chosen) + len(group) > limit:
            continue
        chosen += group
        if len(chosen) >= limit:
            break
    return chosen


def with_context(released: torch.Tensor, pick: torch.Tensor, context: int, limit: int) -> torch.Tensor:
    """``pick`` (indices into ``released``, best first) widened by each token's released left neighbours (up to
    ``context`` each), whole groups only, at most ``limit`` in all (:func:`rebuild_groups`). A token's K/V above
    layer 0 depend on its context (e.g. a value token's state carries the key before it): rebuilt without that
    context they differ from full attention."""
    where = {int(p): i for i, p in enumerate(released.tolist())}
    neighbours = []
    for i in pick.tolist():
        near, pos = [], int(released[i])
        for d in range(1, context + 1):
            j = where.get(pos - d)
            if j is None:
                break
            near.append(j)
        neighbours.append(near)
    return torch.tensor(rebuild_groups(pick.tolist(), neighbours, limit), dtype=torch.long)


def take_rebuild(
    cache: ReleasableCache, controller: Any, ids: torch.Tensor, step: int, cfg: DecodeConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Released tokens to rebuild before step ``step`` (``ids``: every token id so far, by position): the
    controller's top ``cfg.rebuild`` plus their released left neighbours (``cfg.rebuild_context``), removed from the
    released pool; returns their ``(ids, positions)`` in position order (empty when nothing is picked)."""
    empty = torch.empty(0, dtype=torch.long)
    if not cfg.rebuild or cache.released_ids.numel() == 0:
        return empty, empty
    pick = controller.pick_rebuild(cache, ids, step, cfg.rebuild)
    if pick.numel() and cfg.rebuild_context:
        pick = with_context(cache.released_positions, pick, cfg.rebuild_context, cfg.rebuild)
    if pick.numel() == 0:
        return empty, empty
    rb_ids, rb_pos = cache.take_released(pick)
    order = torch.argsort(rb_pos)
    return rb_ids[order], rb_pos[order]


@torch.no_grad()
def run_sequence(
    model: Any,
    ids: torch.Tensor,
    policy: Policy,
    cfg: DecodeConfig,
    controller: Any = None,
    future: torch.Tensor | None = None,
    record: bool = False,
) -> dict[str, Any]:
    """Teacher-forced pass over ``ids`` (1-D) with a releasing cache.

    Returns ``logits (T-1, vocab)`` (row t predicts token t+1), ``cache_sizes`` (after each step), ``max_in_forward``
    (largest cache + query length seen), ``rebuilt`` (positions rebuilt, per step) and, with ``record`` (O(T^2)
    memory, off by default), ``visible`` (``(T, T)`` bool:
    row t marks the positions token t's query attended: causal in the prefill, then the cache, the tokens rebuilt
    in the same forward and itself) and ``slots``, the same run as one parallel forward: every K/V the decode
    computed is a slot (the T tokens first, then each rebuilt copy), ``{"ids", "positions": (S,), "visible": (S, S)
    bool}``; ``model(ids, position_ids=positions, attention_mask=visible as an additive mask)`` gives the decode's
    logits in its first T rows (tested), which is what :mod:`adore.finetune` trains on.
    ``future``: the full-attention map (needed by the oracle policy).
    """
    check_model(model)
    if policy.needs_attention and model.config._attn_implementation != "eager":
        raise ValueError(
            f"policy {policy.name!r} reads attention weights: load the model with attn_implementation='eager'"
        )
    if cfg.rebuild and controller is None:
        raise ValueError("rebuild > 0 needs a controller to choose the tokens to rebuild")
    full = isinstance(policy, FullCache)
    need_attention = policy.needs_attention
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device  # bookkeeping stays on the CPU; model inputs go to the model
    ids = ids.cpu()
    cache = ReleasableCache()
    n = ids.numel()
    p = min(cfg.prefill, n)
    out = model(
        ids[None, :p].to(device),
        position_ids=torch.arange(p)[None].to(device),
        use_cache=True,
        output_attentions=need_attention,
        **cache_kwargs(model, cache),
    )
    cache.record(ids[:p], torch.arange(p))
    logits = [out.logits[0].float().cpu()]
    attention_sum = torch.zeros(cache.size)
    extra: dict[str, Any] = {}
    prompt_attn = None
    if need_attention:
        prompt_attn = torch.stack([a[0].float().cpu() for a in out.attentions]).mean(dim=(0, 1))  # (p, p)
        attention_sum = prompt_attn.sum(0)
        policy.prefill(prompt_attn, Observation(torch.arange(p), ids[:p], extra=extra))
    sizes, rebuilt_log = [], []
    max_in_forward = p
    if record:
        visible = torch.zeros(n, n, dtype=torch.bool)
        visible[:p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
        cached_slots = torch.arange(p)  # the slot of each cached K/V, aligned with cache.positions
        slot_ids, slot_pos = ids.tolist(), list(range(n))
        slot_rows: dict[int, torch.Tensor] = {t: torch.arange(t + 1) for t in range(p)}

    def release(step: int, last_attention: torch.Tensor | None) -> None:
        nonlocal attention_sum, cached_slots
        if full or cache.size <= cfg.budget:
            return
        obs = Observation(
            cache.positions,
            cache.token_ids,
            last_attention,
            attention_sum,
            step,
            future[step + 1, cache.positions] if future is not None and step + 1 < n else None,
            extra,
        )
        if future is not None and obs.future_attention is None:
            obs.future_attention = torch.zeros(cache.size)
        recent = policy.recent_tokens(cfg.budget, cfg.recent)
        obs.extra["ids"] = ids
        scores = policy.score(obs)
        target = cfg.budget - cfg.release_every + 1
        keep = select(scores, cache.positions, target, max(cfg.sinks, getattr(policy, "sinks", 0)), recent)
        attention_sum = attention_sum[keep]
        if record:
            cached_slots = cached_slots[keep]
        cache.keep(keep)

    release(p - 1, prompt_attn[-1] if need_attention else None)
    sizes.append(cache.size)
    decode_start = time.perf_counter()
    for t in range(p, n):
        rb_ids, rb_pos = take_rebuild(cache, controller, ids, t, cfg)
        q_ids = torch.cat([rb_ids, ids[t : t + 1]])
        q_pos = torch.cat([rb_pos, torch.tensor([t])])
        if record:
            visible[t, cache.positions] = True
            visible[t, q_pos] = True
            q_slots = torch.tensor(
                [*range(len(slot_ids), len(slot_ids) + rb_pos.numel()), t], dtype=torch.long
            )
            slot_ids += rb_ids.tolist()
            slot_pos += rb_pos.tolist()
            for slot, qp in zip(q_slots.tolist(), q_pos.tolist(), strict=True):  # as causal_mask: by position
                slot_rows[slot] = torch.cat([cached_slots[cache.positions <= qp], q_slots[q_pos <= qp]])
            cached_slots = torch.cat([cached_slots, q_slots])
        mask = causal_mask(torch.cat([cache.positions, q_pos]), q_pos, dtype)
        max_in_forward = max(max_in_forward, cache.size + q_ids.numel())
        out = model(
            q_ids[None].to(device),
            position_ids=q_pos[None].to(device),
            attention_mask=mask.to(device),
            use_cache=True,
            output_attentions=need_attention,
            **cache_kwargs(model, cache),
        )
        cache.record(q_ids, q_pos)
        logits.append(out.logits[0, -1:].float().cpu())
        last = None
        attention_sum = torch.cat([attention_sum, torch.zeros(q_ids.numel())])
        if need_attention:
            last = pooled_attention(out.attentions)
            attention_sum = attention_sum + last
        rebuilt_log.append(rb_pos.tolist())
        release(t, last)
        sizes.append(cache.size)
    decode_seconds = time.perf_counter() - decode_start
    recorded: dict[str, Any] = {}
    if record:
        slot_visible = torch.zeros(len(slot_ids), len(slot_ids), dtype=torch.bool)
        for slot, row in slot_rows.items():
            slot_visible[slot, row] = True
        recorded = {
            "visible": visible,
            "slots": {
                "ids": torch.tensor(slot_ids, dtype=torch.long),
                "positions": torch.tensor(slot_pos, dtype=torch.long),
                "visible": slot_visible,
            },
        }
    all_logits = torch.cat(logits)[: n - 1]
    return {
        "logits": all_logits,
        "cache_sizes": sizes,
        "max_in_forward": max_in_forward,
        "rebuilt": rebuilt_log,
        **recorded,
        "cache": cache,
        "decode_seconds": decode_seconds,
    }
