"""``model.generate(..., past_key_values=AdoreCache(...))``: identical to plain generation when nothing is released,
identical to the manual release/rebuild loop when it is, and always within budget."""

from __future__ import annotations

import pytest
import torch

from adore.controller import AdorePolicy, ControllerConfig, train_controller
from adore.decode import DecodeConfig, run_sequence
from adore.generate import AdoreCache
from adore.policies import H2O, StreamingLLM
from paperlab.models import tiny_causal_lm

NEW = 32


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm(
        vocab_size=64, layers=3, hidden=32, heads=4, kv_heads=2, attn_implementation="eager"
    )


@pytest.fixture(scope="module")
def controller(lm):
    seqs = torch.randint(3, 64, (4, 40), generator=torch.Generator().manual_seed(3))
    return train_controller(lm, seqs, ControllerConfig(sequences=4, epochs=1), progress=False)


@pytest.fixture(scope="module")
def prompt():
    return torch.randint(3, 64, (1, 24), generator=torch.Generator().manual_seed(2))


def _generate(lm, prompt, cache=None):
    kwargs = {"past_key_values": cache} if cache is not None else {}
    out = lm.generate(
        prompt,
        max_new_tokens=NEW,
        min_new_tokens=NEW,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=0,
        **kwargs,
    )
    return out.sequences[0], torch.cat(out.logits)


def test_large_budget_generates_exactly_like_the_full_cache(lm, prompt, controller) -> None:
    ref_ids, ref_logits = _generate(lm, prompt)
    with AdoreCache(lm, controller, budget=128, rebuild=2) as cache:
        ids, logits = _generate(lm, prompt, cache)
    assert torch.equal(ids, ref_ids)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert cache.released_ids.numel() == 0 and cache.size == cache.seen


@pytest.mark.parametrize("rebuild", [0, 2])
def test_generate_equals_the_manual_loop_and_stays_in_budget(lm, prompt, controller, rebuild: int) -> None:
    budget = 10
    with AdoreCache(lm, controller, budget=budget, rebuild=rebuild, rebuild_context=1) as cache:
        ids, logits = _generate(lm, prompt, cache)
    assert cache.size <= budget and cache.max_in_forward <= max(prompt.shape[1], budget + rebuild + 1)
    assert cache.size + cache.released_ids.numel() == cache.seen == ids.numel() - 1
    assert torch.all(cache.positions[1:] > cache.positions[:-1])
    if rebuild:
        assert sum(len(r) for r in cache.rebuilt) > 0  # the controller did rebuild something
    manual = run_sequence(
        lm,
        ids,
        AdorePolicy(controller=controller),
        DecodeConfig(budget=budget, sinks=1, rebuild=rebuild, rebuild_context=1, prefill=prompt.shape[1]),
        controller=controller if rebuild else None,
    )
    # row t of the manual logits predicts token t+1: the generated tokens are predicted from rows P-1 .. end
    assert torch.allclose(manual["logits"][prompt.shape[1] - 1 :], logits, atol=1e-4)
    # same rebuild decisions step by step (generate: no rebuild at prefill, and the last token is never fed)
    assert manual["rebuilt"][:-1] == cache.rebuilt[1:]


def test_hooks_leave_other_forwards_alone(lm, prompt, controller) -> None:
    cache = AdoreCache(lm, controller, budget=8)
    plain = lm(prompt).logits  # no cache passed: the hooks must not touch it
    cache.close()
    assert torch.allclose(plain, lm(prompt).logits)


def test_bad_arguments_are_refused(lm, controller) -> None:
    with pytest.raises(ValueError, match="budget"):
        AdoreCache(lm, controller, budget=0)
    with pytest.raises(ValueError, match="rebuild"):
        AdoreCache(lm, controller, budget=3, sinks=1, rebuild=4)
    with pytest.raises(ValueError, match="attention weights"):
        AdoreCache(lm, budget=16, policy=H2O())
    with pytest.raises(ValueError, match="controller"):
        AdoreCache(lm, budget=16)
    with pytest.raises(ValueError, match="controller"):
        AdoreCache(lm, budget=16, policy=StreamingLLM(), rebuild=2)
    with (
        AdoreCache(lm, controller, budget=[16, 16, 16]) as cache,
        pytest.raises(ValueError, match="3 budgets"),
    ):
        lm.generate(
            torch.ones(2, 4, dtype=torch.long), max_new_tokens=2, past_key_values=cache, pad_token_id=0
        )


@pytest.fixture(scope="module")
def gru_controller(lm):
    seqs = torch.randint(3, 64, (4, 40), generator=torch.Generator().manual_seed(3))
    cfg = ControllerConfig(sequences=4, epochs=1, kind="gru", batch_size=8)
    return train_controller(lm, seqs, cfg, progress=False)


@pytest.mark.parametrize("rebuild", [0, 2])
def test_gru_controller_generate_equals_the_manual_loop(lm, prompt, gru_controller, rebuild: int) -> None:
    """Issue 30 item 1 (in part): the GRU controller's state is carried through generate step by step and gives
    the manual loop's logits and rebuild decisions (the manual loop reads the GRU over the whole sequence)."""
    assert gru_controller.gru is not None
    budget = 10
    with AdoreCache(lm, gru_controller, budget=budget, rebuild=rebuild, rebuild_context=1) as cache:
        ids, logits = _generate(lm, prompt, cache)
    assert cache.size <= budget
    manual = run_sequence(
        lm,
        ids,
        AdorePolicy(controller=gru_controller),
        DecodeConfig(budget=budget, sinks=1, rebuild=rebuild, rebuild_context=1, prefill=prompt.shape[1]),
        controller=gru_controller if rebuild else None,
    )
    assert torch.allclose(manual["logits"][prompt.shape[1] - 1 :], logits, atol=1e-4)
    assert manual["rebuilt"][:-1] == cache.rebuilt[1:]
    if rebuild:
        assert sum(len(r) for r in cache.rebuilt) > 0
