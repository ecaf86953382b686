"""What to keep: one small policy class per method, each with one scoring method (the kvpress shape).

A policy scores the cached tokens after each step (higher = keep); :func:`select` keeps the ``budget`` best while
always keeping ``sinks`` first tokens and the ``recent`` newest. The :class:`Observation` carries what the policies
read: positions, token ids, the attention the current queries paid to every cached token (pooled over layers and
heads: the mean), and the running sum of that attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Observation:
    """Per cached token (n,): ``positions``, ``token_ids``, ``attention`` (mean over layers, heads and this step's
    queries of the attention paid to it; 0 for tokens added this step), ``attention_sum`` (H2O's accumulated
    attention). ``step`` is the position of the newest token. ``future_attention``: the attention the NEXT query
    pays (oracle only; from a full-cache pass)."""

    positions: torch.Tensor
    token_ids: torch.Tensor
    attention: torch.Tensor | None = None
    attention_sum: torch.Tensor | None = None
    step: int = 0
    future_attention: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)


class Policy:
    """One method = one small class: ``score`` ranks the cached tokens; ``recent_tokens`` and ``prefill`` let a policy
    own its details (H2O's recent share of the budget, SnapKV's prompt scores) instead of the decode loop."""

    name = "policy"
    needs_attention = False
    sinks = 0
    recent = 1

    def score(self, obs: Observation) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def recent_tokens(self, budget: int, recent: int) -> int:
        """How many newest tokens are always kept at ``budget`` (``recent``: the decode config's floor)."""
        return recent

    def prefill(self, prompt_attention: torch.Tensor, obs: Observation) -> None:
        """Called once after the prompt's forward with its pooled attention ``(p, p)`` (attention policies only)."""


@dataclass
class FullCache(Policy):
    """Never releases anything (the reference)."""

    name = "full"

    def score(self, obs: Observation) -> torch.Tensor:
        return torch.zeros(obs.positions.numel())


@dataclass
class SlidingWindow(Policy):
    """The ``budget`` most recent tokens."""

    name = "window"

    def score(self, obs: Observation) -> torch.Tensor:
        return obs.positions.float()


@dataclass
class StreamingLLM(Policy):
    """Attention sinks + a recent window (Xiao et al., ICLR 2024): the first ``sinks`` tokens and the newest."""

    sinks: int = 4
    name = "streaming_llm"

    def score(self, obs: Observation) -> torch.Tensor:
        return obs.positions.float()


@dataclass
class H2O(Policy):
    """Heavy hitters + recent (Zhang et al., NeurIPS 2023): keep the tokens with the largest accumulated attention,
    half the budget reserved for the most recent (``recent`` is set from the budget by :func:`select`)."""

    name = "h2o"
    needs_attention = True
    recent_fraction: float = 0.5

    def recent_tokens(self, budget: int, recent: int) -> int:
        return max(recent, int(budget * self.recent_fraction))

    def score(self, obs: Observation) -> torch.Tensor:
        return obs.attention_sum.clone()


@dataclass
class TOVA(Policy):
    """Token omission via attention (Oren et al., 2024): drop the token the newest query attends to least."""

    name = "tova"
    needs_attention = True

    def score(self, obs: Observation) -> torch.Tensor:
        return obs.attention.clone()


@dataclass
class SnapKV(Policy):
    """SnapKV (Li et al., 2024), prefill only: prompt tokens ranked once by the attention of the last ``window``
    prompt queries (pooled with a max filter of width ``kernel``); generated tokens kept by recency."""

    name = "snapkv"
    needs_attention = True
    window: int = 8
    kernel: int = 5

    def prefill(self, prompt_attention: torch.Tensor, obs: Observation) -> None:
        """Prompt scores: the attention of the last ``window`` prompt queries, max-pooled over width ``kernel``."""
        votes = prompt_attention[-self.window :].sum(0)
        pad = self.kernel // 2
        pooled = torch.nn.functional.max_pool1d(votes[None, None], self.kernel, stride=1, padding=pad)[0, 0]
        obs.extra["prompt_scores"] = pooled[: votes.numel()]  # (p,) by position

    def score(self, obs: Observation) -> torch.Tensor:
        prompt = obs.extra.get("prompt_scores")
        s = obs.positions.float() + 1e6  # generated tokens: recency, above every prompt token
        if prompt is not None:
            in_prompt = obs.positions < prompt.numel()
            s[in_prompt] = prompt[obs.positions[in_prompt]]
        return s


@dataclass
class RandomPolicy(Policy):
    name = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        self._gen = torch.Generator().manual_seed(self.seed)

    def score(self, obs: Observation) -> torch.Tensor:
        return torch.rand(obs.positions.numel(), generator=self._gen)


@dataclass
class OracleTopK(Policy):
    """Upper bound: keeps the tokens the next query will attend to most under full attention (needs the future)."""

    name = "oracle"

    def score(self, obs: Observation) -> torch.Tensor:
        return obs.future_attention.clone()


def select(
    scores: torch.Tensor, positions: torch.Tensor, budget: int, sinks: int = 0, recent: int = 1
) -> torch.Tensor:
    """Indices (ascending by position) of the tokens to keep: the ``sinks`` earliest and ``recent`` newest always,
    then the highest ``scores`` up to ``budget`` in total."""
    n = positions.numel()
    if n <= budget:
        return torch.arange(n)
    order = torch.argsort(positions)
    forced = torch.zeros(n, dtype=torch.bool)
    forced[order[: min(sinks, n)]] = True
    if recent:
        forced[order[-min(recent, n) :]] = True
    free = budget - int(forced.sum())
    if free < 0:
        raise ValueError(f"budget {budget} < sinks {sinks} + recent {recent}")
    masked = scores.clone().float()
    masked[forced] = float("-inf")
    extra = torch.topk(masked, free).indices if free else torch.empty(0, dtype=torch.long)
    keep = torch.cat([torch.nonzero(forced).flatten(), extra])
    return keep[torch.argsort(positions[keep])]
