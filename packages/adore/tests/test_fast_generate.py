"""Issue 30, item 2: the generate path is fast by design and still exact. SDPA (mask-free when nothing is rebuilt, the
model's own causal prefill), fixed slot buffers, the controller split into a token side and a query side, batch 2
(with left padding), sampling, EOS stopping, tiny Qwen2 and Mistral models, and the flash-attention refusal."""

from __future__ import annotations

import pytest
import torch

from adore.controller import AdorePolicy, ControllerConfig, SplitHead, train_controller
from adore.decode import DecodeConfig, run_sequence
from adore.generate import AdoreCache
from paperlab.models import tiny_causal_lm

V, NEW, BUDGET, R = 64, 24, 10, 2


def _lm(family: str = "llama", attn: str = "sdpa"):
    return tiny_causal_lm(
        vocab_size=V,
        layers=2,
        hidden=32,
        heads=4,
        kv_heads=2,
        family=family,
        attn_implementation=attn,
        seed=1,
    )


@pytest.fixture(scope="module")
def lm():
    return _lm()


@pytest.fixture(scope="module")
def controller(lm):
    seqs = torch.randint(3, V, (4, 40), generator=torch.Generator().manual_seed(3))
    eager = _lm(attn="eager")  # the oracle labels read attention weights; same weights as `lm`
    return train_controller(eager, seqs, ControllerConfig(sequences=4, epochs=1), progress=False)


def _prompt(length: int, seed: int) -> torch.Tensor:
    return torch.randint(3, V, (1, length), generator=torch.Generator().manual_seed(seed))


def _gen(model, ids, cache=None, **kw):
    args = {"max_new_tokens": NEW, "min_new_tokens": NEW, "do_sample": False, "pad_token_id": 0}
    args.update(kw)
    if cache is not None:
        args["past_key_values"] = cache
    out = model.generate(ids, output_logits=True, return_dict_in_generate=True, **args)
    return out.sequences, torch.stack(out.logits, 1)  # (b, T), (b, new, V)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_large_budget_equals_plain_generate_mask_free(family: str) -> None:
    model = _lm(family)
    seqs = torch.randint(3, V, (2, 30), generator=torch.Generator().manual_seed(4))
    ctl = train_controller(
        _lm(family, "eager"), seqs, ControllerConfig(sequences=2, epochs=1), progress=False
    )
    prompt = _prompt(16, 5)
    ref_ids, ref_logits = _gen(model, prompt)
    with AdoreCache(model, ctl, budget=64, rebuild=R) as cache:
        ids, logits = _gen(model, prompt, cache)
    assert torch.equal(ids, ref_ids)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert cache.forwards == NEW and cache.masked_forwards == 0  # prefill: is_causal; steps: no mask at all


def test_small_budget_equals_the_manual_loop_on_sdpa(lm, controller) -> None:
    prompt = _prompt(24, 2)
    with AdoreCache(lm, controller, budget=BUDGET, rebuild=R, threshold=None) as cache:
        ids, logits = _gen(lm, prompt, cache)
    manual = run_sequence(
        lm,
        ids[0],
        AdorePolicy(controller=controller),
        DecodeConfig(budget=BUDGET, sinks=1, rebuild=R, rebuild_context=1, prefill=24),
        controller=type(
            "Always", (), {"pick_rebuild": lambda s, c, i, t, k: controller.pick_rebuild(c, i, t, k, -1.0)}
        )(),
    )
    assert manual["rebuilt"][:-1] == cache.rebuilt[1:]  # the same rebuild decisions, step by step
    assert torch.allclose(manual["logits"][23:], logits[0], atol=1e-4)
    steps_with_rebuild = sum(1 for r in cache.rebuilt if r)
    assert (
        steps_with_rebuild > NEW // 2 and cache.masked_forwards == steps_with_rebuild
    )  # only those carry a mask
    assert cache.size <= BUDGET and cache.size + cache.released_ids.numel() == cache.seen


def test_slot_buffers_are_fixed_and_written_in_place(lm, controller) -> None:
    pointers = []
    with AdoreCache(lm, controller, budget=BUDGET, rebuild=R, release_every=4) as cache:
        hook = lm.register_forward_hook(lambda *a: pointers.append(cache.layers[0].keys.data_ptr()))
        try:
            _gen(lm, _prompt(30, 6), cache)
        finally:
            hook.remove()
    assert cache.layers[0].keys.shape[-2] == BUDGET + R + 1  # budget + R + the new token, after the prompt
    assert len(set(pointers[1:])) == 1  # every decode step wrote into the same buffer: no reallocation
    assert cache.max_in_forward <= max(30, BUDGET + R + 1)


def test_split_controller_scores_equal_the_controller(controller) -> None:
    ids = torch.randint(3, V, (40,), generator=torch.Generator().manual_seed(7))
    positions = torch.arange(30)
    table = controller._table()
    for mode in ("release", "rebuild"):
        head = SplitHead(controller, mode, "cpu")
        tok = table[ids[positions]]
        prev = torch.where(positions > 0, ids[(positions - 1).clamp(min=0)], torch.zeros_like(positions))
        pre = table[prev]
        dist = torch.log1p((35 - positions).float())
        split = head.logits(head.token_side(tok, pre), torch.cat([tok, pre], -1), table[ids[35]], dist)
        with torch.no_grad():
            assert torch.allclose(split, controller.score(positions, ids, 35, mode), atol=1e-5)


def test_batch_of_two_equals_each_sequence_alone(lm, controller) -> None:
    a, b = _prompt(20, 8), _prompt(20, 9)
    with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as cache:
        ids, logits = _gen(lm, torch.cat([a, b]), cache)
    for row, prompt in enumerate((a, b)):
        with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as alone:
            ref_ids, ref_logits = _gen(lm, prompt, alone)
        assert torch.equal(ids[row], ref_ids[0])
        assert torch.allclose(logits[row], ref_logits[0], atol=1e-4)
        assert [r[row] for r in cache.rebuilt_rows] == alone.rebuilt


def test_left_padded_batch_equals_each_sequence_alone(lm, controller) -> None:
    short, long = _prompt(14, 10), _prompt(20, 11)
    batch = torch.cat([torch.cat([torch.zeros(1, 6, dtype=torch.long), short], 1), long])
    mask = torch.ones_like(batch)
    mask[0, :6] = 0
    with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as cache:
        ids, logits = _gen(lm, batch, cache, attention_mask=mask)
    for row, prompt in enumerate((short, long)):
        with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as alone:
            ref_ids, ref_logits = _gen(lm, prompt, alone)
        assert torch.equal(ids[row, -NEW:], ref_ids[0, -NEW:])
        assert torch.allclose(logits[row], ref_logits[0], atol=1e-4)


def test_sampling_equals_plain_sampling_and_stays_in_budget(lm, controller) -> None:
    prompt = _prompt(16, 12)
    torch.manual_seed(0)
    ref, _ = _gen(lm, prompt, do_sample=True, top_k=20)
    torch.manual_seed(0)
    with AdoreCache(lm, controller, budget=64) as cache:
        ids, _ = _gen(lm, prompt, cache, do_sample=True, top_k=20)
    assert torch.equal(ids, ref)
    draws = []
    for _ in range(2):
        torch.manual_seed(1)
        with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as cache:
            draws.append(_gen(lm, prompt, cache, do_sample=True)[0])
        assert cache.size <= BUDGET
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], ref)


def test_eos_stops_each_sequence(lm, controller) -> None:
    a, b = _prompt(20, 13), _prompt(20, 14)
    with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as cache:
        free, _ = _gen(lm, torch.cat([a, b]), cache)
    early = set(free[1, 20:28].tolist())
    eos = next(t for t in free[0, 22:].tolist() if t not in early)  # row 0 stops early, row 1 runs longer
    with AdoreCache(lm, controller, budget=BUDGET, rebuild=R) as cache:
        out = lm.generate(
            torch.cat([a, b]),
            max_new_tokens=NEW,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=0,
            past_key_values=cache,
        )
    first = free[0, 20:].tolist().index(eos)
    assert out[0, 20 : 21 + first].tolist() == free[0, 20 : 21 + first].tolist()
    assert set(out[0, 21 + first :].tolist()) <= {0}  # padded after its EOS
    second = free[1, 20:].tolist()
    stop = second.index(eos) if eos in second else NEW
    assert out.shape[1] == 20 + min(NEW, stop + 1) and out[1, 20:].tolist() == second[: out.shape[1] - 20]


@pytest.mark.parametrize("attn", ["flash_attention_2", "flex_attention"])
def test_flash_and_flex_attention_are_refused_clearly(controller, attn: str) -> None:
    model = _lm()
    model.config._attn_implementation = attn
    with pytest.raises(ValueError, match=f"'sdpa' or 'eager', got '{attn}'.*attn_implementation='sdpa'"):
        AdoreCache(model, controller, budget=BUDGET)
