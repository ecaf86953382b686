"""The releasing decode loop: equals the full cache when nothing is released, never exceeds the budget, keeps
positions, and rebuilds K/V exactly where the paper's rebuild must be exact."""

from __future__ import annotations

import pytest
import torch

from adore.cache import ReleasableCache
from adore.decode import DecodeConfig, cache_kwargs, causal_mask, run_sequence
from adore.policies import (
    H2O,
    TOVA,
    FullCache,
    Policy,
    RandomPolicy,
    SlidingWindow,
    SnapKV,
    StreamingLLM,
    select,
)
from paperlab.models import tiny_causal_lm

POLICIES = [SlidingWindow(), StreamingLLM(), H2O(), TOVA(), SnapKV(), RandomPolicy()]


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return tiny_causal_lm(
        vocab_size=64, layers=3, hidden=32, heads=4, kv_heads=2, attn_implementation="eager"
    )


@pytest.fixture(scope="module")
def ids():
    return torch.randint(3, 64, (48,), generator=torch.Generator().manual_seed(1))


def test_budget_at_least_length_equals_full_cache(lm, ids) -> None:
    reference = lm(ids[None]).logits[0, :-1]
    for policy in [FullCache(), *POLICIES]:
        out = run_sequence(lm, ids, policy, DecodeConfig(budget=64, prefill=6))
        assert torch.allclose(out["logits"], reference, atol=1e-5), policy.name


def test_greedy_generation_with_a_large_budget_matches_the_full_cache(lm) -> None:
    prompt = torch.tensor([5, 9, 11, 3])
    full = lm.generate(prompt[None], max_new_tokens=32, do_sample=False, pad_token_id=0)[0]
    ids = full.clone()
    out = run_sequence(lm, ids, StreamingLLM(), DecodeConfig(budget=64, prefill=4))
    assert torch.equal(out["logits"][3:].argmax(-1), full[4:])  # every generated token is the argmax again


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_cache_never_exceeds_budget_and_positions_are_kept(lm, ids, policy: Policy) -> None:
    out = run_sequence(lm, ids, policy, DecodeConfig(budget=12, prefill=8))
    assert max(out["cache_sizes"]) <= 12
    assert out["max_in_forward"] <= 12 + 1
    cache = out["cache"]
    assert torch.all(cache.positions[1:] > cache.positions[:-1])  # ascending original positions
    assert torch.equal(cache.token_ids, ids[cache.positions])  # each kept token sits at its own position
    assert cache.positions[-1] == len(ids) - 1  # the newest token is always kept
    assert cache.size + cache.released_ids.numel() == len(ids)  # nothing lost: kept + released


def test_streaming_keeps_sinks_and_window(lm, ids) -> None:
    out = run_sequence(lm, ids, StreamingLLM(sinks=4), DecodeConfig(budget=10, prefill=8))
    assert out["cache"].positions.tolist() == [0, 1, 2, 3, *range(42, 48)]


class RebuildAt:
    """A stand-in controller: rebuilds given released positions at given steps."""

    def __init__(self, plan: dict[int, list[int]]) -> None:
        self.plan = plan

    def pick_rebuild(self, cache: ReleasableCache, ids, step: int, limit: int) -> torch.Tensor:
        wanted = self.plan.get(step, [])[:limit]
        return torch.tensor(
            [i for i, p in enumerate(cache.released_positions.tolist()) if p in wanted], dtype=torch.long
        )


def _full_kv(lm, ids):
    cache = ReleasableCache()
    lm(ids[None], use_cache=True, **cache_kwargs(lm, cache))
    return cache


def test_rebuilt_kv_equals_the_full_cache(lm, ids) -> None:
    """Release position 5 after a 10-token prefill, then rebuild it in the same forward as token 10: its K/V must equal
    the full cache's (layer 0 exactly; every layer to 1e-4, since every earlier token is present)."""
    seq = ids[:11]
    full = _full_kv(lm, seq)
    cache = ReleasableCache()
    lm(seq[None, :10], position_ids=torch.arange(10)[None], use_cache=True, **cache_kwargs(lm, cache))
    cache.record(seq[:10], torch.arange(10))
    cache.keep(torch.tensor([0, 1, 2, 3, 4, 6, 7, 8, 9]))
    ids_r, pos_r = cache.take_released(torch.tensor([0]))
    assert pos_r.tolist() == [5] and cache.released_ids.numel() == 0
    q_ids, q_pos = torch.cat([ids_r, seq[10:]]), torch.tensor([5, 10])
    mask = causal_mask(torch.cat([cache.positions, q_pos]), q_pos, torch.float32)
    out = lm(
        q_ids[None], position_ids=q_pos[None], attention_mask=mask, use_cache=True, **cache_kwargs(lm, cache)
    )
    cache.record(q_ids, q_pos)
    where = cache.positions.tolist().index(5)
    for layer in range(len(full.layers)):
        k_re, v_re = cache.layers[layer].keys[0, :, where], cache.layers[layer].values[0, :, where]
        k_full, v_full = full.layers[layer].keys[0, :, 5], full.layers[layer].values[0, :, 5]
        tol = 1e-6 if layer == 0 else 1e-4
        assert torch.allclose(k_re, k_full, atol=tol) and torch.allclose(v_re, v_full, atol=tol), layer
    # and the new token's prediction equals the full cache's
    assert torch.allclose(out.logits[0, -1], lm(seq[None]).logits[0, -1], atol=1e-5)


def test_rebuild_keeps_the_cache_within_budget_plus_r(lm, ids) -> None:
    plan = {t: list(range(0, t, 3)) for t in range(10, 48)}
    out = run_sequence(
        lm, ids, SlidingWindow(), DecodeConfig(budget=10, prefill=8, rebuild=2), controller=RebuildAt(plan)
    )
    assert max(out["cache_sizes"]) <= 10
    assert out["max_in_forward"] <= 10 + 2 + 1
    assert any(out["rebuilt"])


def test_mask_and_select_by_hand() -> None:
    mask = causal_mask(torch.tensor([0, 2, 5, 3]), torch.tensor([3, 6]), torch.float32)[0, 0]
    assert (mask == 0).tolist() == [[True, True, False, True], [True, True, True, True]]
    keep = select(
        torch.tensor([0.9, 0.1, 0.8, 0.2, 0.5]), torch.tensor([0, 1, 2, 3, 4]), budget=3, sinks=1, recent=1
    )
    assert keep.tolist() == [0, 2, 4]


def test_bad_input_errors(lm, ids) -> None:
    with pytest.raises(ValueError, match="budget"):
        DecodeConfig(budget=0)
    with pytest.raises(ValueError, match="sinks \\+ recent \\+ rebuild"):
        DecodeConfig(budget=4, sinks=4, rebuild=2)
    with pytest.raises(ValueError, match="controller"):
        run_sequence(lm, ids, SlidingWindow(), DecodeConfig(budget=8, rebuild=2))
    gpt2 = type("M", (), {"config": type("C", (), {"model_type": "gpt2"})()})()
    with pytest.raises(ValueError, match="not supported"):
        run_sequence(gpt2, ids, SlidingWindow(), DecodeConfig(budget=8))


def test_chunked_release_stays_within_budget(lm, ids) -> None:
    out = run_sequence(lm, ids, SlidingWindow(), DecodeConfig(budget=12, prefill=8, release_every=4))
    assert max(out["cache_sizes"]) <= 12
    assert min(out["cache_sizes"][1:]) == 12 - 4 + 1  # released in chunks down to budget - release_every + 1
    with pytest.raises(ValueError, match="release_every"):
        DecodeConfig(budget=8, release_every=9)
