"""The one list of methods every experiment evaluates, and the one rule that turns a budget fraction into tokens.

Each entry of :data:`POLICIES` names a method and builds it for the manual decode loop (:func:`manual`: policy,
:class:`~adore.decode.DecodeConfig` and the controller that picks rebuilds) or for ``model.generate``
(:func:`generate_cache`: an :class:`~adore.generate.AdoreCache`, ``None`` for the full cache). The recall, LM and QA
experiments validate their ``policies`` against this registry and size budgets with :func:`budget_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adore.controller import AdorePolicy
from adore.decode import DecodeConfig
from adore.generate import AdoreCache
from adore.policies import (
    H2O,
    TOVA,
    FullCache,
    OracleTopK,
    Policy,
    RandomPolicy,
    SlidingWindow,
    SnapKV,
    StreamingLLM,
)

STREAMING_SINKS = 4  # StreamingLLM's attention sinks (Xiao et al., 2024, sec. 3.2: four initial tokens)
ADORE_SINKS = 1  # ADORE keeps BOS


def budget_tokens(fraction: float, length: int, rebuild: int = 0) -> int:
    """The KV budget in tokens for ``fraction`` of ``length``: ``round(fraction * length)``, at least enough for
    every method's always-kept tokens (StreamingLLM's 4 sinks + the newest; ADORE's sink + newest + R rebuilt)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
    return max(round(fraction * length), STREAMING_SINKS + 1, ADORE_SINKS + 2 + rebuild)


@dataclass(frozen=True)
class PolicySpec:
    """``make(budget, rebuild)`` -> ``(policy, sinks, rebuild R, rebuild_context or None=default)``."""

    name: str
    make: Callable[[int, int], Policy | None]
    sinks: int = 0
    adore: bool = False  # uses the controller's release head
    rebuilds: bool = False  # uses the controller's rebuild head (R > 0)
    context: int | None = None  # rebuild_context override (None: the experiment's)
    needs_future: bool = False  # the oracle: reads the full-attention map

    @property
    def needs_attention(self) -> bool:
        policy = self.make(8, 0)
        return bool(policy is not None and policy.needs_attention)

    @property
    def in_generate(self) -> bool:
        """Runs inside ``model.generate`` (its scores need no attention weights, no future)."""
        return not self.needs_attention and not self.needs_future


POLICIES: dict[str, PolicySpec] = {
    s.name: s
    for s in (
        PolicySpec("full", lambda b, r: FullCache()),
        PolicySpec("window", lambda b, r: SlidingWindow()),
        PolicySpec("streaming_llm", lambda b, r: StreamingLLM(sinks=STREAMING_SINKS), sinks=STREAMING_SINKS),
        PolicySpec("h2o", lambda b, r: H2O()),
        PolicySpec("tova", lambda b, r: TOVA()),
        PolicySpec("snapkv", lambda b, r: SnapKV()),
        PolicySpec("random", lambda b, r: RandomPolicy()),
        PolicySpec("oracle", lambda b, r: OracleTopK(), needs_future=True),
        PolicySpec("adore", lambda b, r: None, sinks=ADORE_SINKS, adore=True),
        PolicySpec("adore+rebuild", lambda b, r: None, sinks=ADORE_SINKS, adore=True, rebuilds=True),
        PolicySpec(
            "adore+rebuild-ctx0", lambda b, r: None, sinks=ADORE_SINKS, adore=True, rebuilds=True, context=0
        ),
    )
}
POLICY_NAMES = tuple(POLICIES)
GENERATE_POLICIES = tuple(n for n, s in POLICIES.items() if s.in_generate)


def check_names(names: list[str], field: str = "policies", allowed: tuple[str, ...] = POLICY_NAMES) -> None:
    from paperlab.config import require

    for name in names:
        require(name in allowed, field, name, f"names from {', '.join(allowed)}")


def manual(
    name: str, budget: int, controller: Any, rebuild: int = 2, context: int = 1
) -> tuple[Policy, DecodeConfig, Any]:
    """``(policy, decode config, rebuild controller or None)`` of method ``name`` for :func:`adore.decode.run_sequence`."""
    spec = POLICIES[name]
    r = rebuild if spec.rebuilds else 0
    ctx = context if spec.context is None else spec.context
    policy = AdorePolicy(controller=controller, sinks=spec.sinks) if spec.adore else spec.make(budget, r)
    cfg = DecodeConfig(budget=budget, sinks=spec.sinks, rebuild=r, rebuild_context=ctx if r else 0)
    return policy, cfg, controller if r else None


def generate_cache(
    name: str, model: Any, controller: Any, budget: int, rebuild: int = 2, context: int = 1, **kwargs: Any
) -> AdoreCache | None:
    """The cache that runs method ``name`` inside ``model.generate`` (``None``: the full cache)."""
    spec = POLICIES[name]
    if not spec.in_generate:
        raise ValueError(
            f"policy {name!r} cannot run inside generate(); use one of {', '.join(GENERATE_POLICIES)}"
        )
    if name == "full":
        return None
    r = rebuild if spec.rebuilds else 0
    ctx = context if spec.context is None else spec.context
    if spec.adore:
        return AdoreCache(
            model, controller, budget=budget, rebuild=r, rebuild_context=ctx, sinks=spec.sinks, **kwargs
        )
    return AdoreCache(model, budget=budget, policy=spec.make(budget, 0), sinks=spec.sinks, **kwargs)
