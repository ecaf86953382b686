"""The ADORE fine-tune (adore.finetune): the decode's recorded visibility is exactly what each query attended, so
one parallel forward under it reproduces the releasing decode's logits (without rebuilds), and fine-tuning under
it resumes and loads like every LM of the package."""

from __future__ import annotations

import pytest
import torch

from adore.decode import DecodeConfig, run_sequence
from adore.finetune import FinetuneConfig, additive_mask, finetune_lm
from adore.policies import FullCache, StreamingLLM
from paperlab.models import tiny_causal_lm


def _lm(seed: int = 0):
    return tiny_causal_lm(
        vocab_size=40, layers=2, hidden=32, heads=4, max_position=64, seed=seed, attn_implementation="eager"
    ).eval()


def test_full_cache_visibility_is_causal_and_only_recorded_when_asked() -> None:
    ids = torch.randint(1, 40, (20,), generator=torch.Generator().manual_seed(0))
    out = run_sequence(_lm(), ids, FullCache(), DecodeConfig(budget=20, prefill=6), record=True)
    assert torch.equal(out["visible"], torch.ones(20, 20, dtype=torch.bool).tril())
    plain = run_sequence(_lm(), ids, FullCache(), DecodeConfig(budget=20, prefill=6))
    assert "visible" not in plain and "slots" not in plain and torch.equal(plain["logits"], out["logits"])


def test_one_forward_under_the_visibility_reproduces_the_releasing_decode() -> None:
    """StreamingLLM at 8 of 30 tokens: each decode row sees the 4 sinks and the newest tokens, and the masked
    parallel forward gives the decode's logits (the cache holds K/V computed under exactly these rows)."""
    model = _lm()
    ids = torch.randint(1, 40, (30,), generator=torch.Generator().manual_seed(1))
    out = run_sequence(
        model, ids, StreamingLLM(sinks=4), DecodeConfig(budget=8, sinks=4, prefill=10), record=True
    )
    seen = out["visible"]
    assert seen[:10, :10].equal(torch.ones(10, 10, dtype=torch.bool).tril())
    for t in range(10, 30):
        assert seen[t].sum() <= 8 + 1, t  # budget, plus the token itself
        assert seen[t, :4].all() and seen[t, t] and not seen[t, t + 1 :].any(), t
    assert not seen[29, 4:22].any()  # released long ago
    with torch.no_grad():
        masked = model(ids[None], attention_mask=additive_mask(seen[None], torch.float32)).logits[0, :-1]
        causal = model(ids[None]).logits[0, :-1]
    assert torch.allclose(masked, out["logits"], atol=1e-5)
    assert (causal[20:] - out["logits"][20:]).abs().max() > 1e-2  # the visibility matters


def test_finetune_learns_under_the_mask_and_resumes_to_the_same_weights(tmp_path) -> None:
    """Copy a task from a released position to the end: under a mask that hides everything but the source token
    and itself the copy is learnt; an interrupted fine-tune resumes to the uninterrupted weights."""
    g = torch.Generator().manual_seed(2)
    n, length = 64, 12
    ids = torch.randint(5, 40, (n, length), generator=g)
    ids[:, -1] = ids[:, 3]  # the answer is token 3
    loss_mask = torch.zeros(n, length, dtype=torch.bool)
    loss_mask[:, -1] = True
    seen = torch.ones(n, length, length, dtype=torch.bool).tril()
    seen[:, -2, :] = False
    seen[:, -2, [3, length - 2]] = True  # the query predicting the last token sees token 3 and itself
    slots = [{"ids": ids[i], "positions": torch.arange(length), "visible": seen[i]} for i in range(n)]
    base = _lm()
    cfg = FinetuneConfig(steps=60, batch_size=16, lr=3e-3, sequences=n)
    tuned = finetune_lm(base, slots, loss_mask, cfg, checkpoint=tmp_path / "a.pt", progress=False)

    def copy_accuracy(model) -> float:
        with torch.no_grad():
            logits = model(ids, attention_mask=additive_mask(seen, torch.float32)).logits[:, -2]
        return float((logits.argmax(-1) == ids[:, -1]).float().mean())

    assert copy_accuracy(base) < 0.2 and copy_accuracy(tuned) > 0.9, (
        copy_accuracy(base),
        copy_accuracy(tuned),
    )
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), _lm().state_dict().values()))

    half = FinetuneConfig(steps=60, batch_size=16, lr=3e-3, sequences=n)
    stopped = tmp_path / "b.pt"
    import adore.tasks

    calls = {"n": 0}
    real = adore.tasks.save_checkpoint

    def stop_after_first(*args, **kwargs):  # the checkpoint at step 30 is written, then the run dies
        real(*args, **kwargs)
        calls["n"] += 1
        raise KeyboardInterrupt

    mp = pytest.MonkeyPatch()
    mp.setattr(adore.tasks, "save_checkpoint", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        finetune_lm(base, slots, loss_mask, half, checkpoint=stopped, progress=False, checkpoint_every=30)
    mp.undo()
    resumed = finetune_lm(
        base, slots, loss_mask, half, checkpoint=stopped, progress=False, checkpoint_every=30
    )
    assert all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), resumed.state_dict().values()))
    loaded = finetune_lm(base, None, loss_mask, half, checkpoint=stopped, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), loaded.state_dict().values()))


class _FixedRebuild:
    """A stand-in controller that rebuilds the newest released tokens at every step (their context is released)."""

    def pick_rebuild(self, cache, ids, step, r):
        order = torch.argsort(cache.released_positions, descending=True)
        return order[:r]


def test_the_slots_reproduce_the_decode_with_rebuilds_exactly() -> None:
    """With tokens rebuilt (their K/V recomputed under the cache of that step, then kept) the ``(T, T)`` visibility
    is not enough; the slots (one per computed K/V) give the decode's logits in one forward."""
    model = _lm()
    ids = torch.randint(1, 40, (30,), generator=torch.Generator().manual_seed(3))
    cfg = DecodeConfig(budget=10, sinks=4, prefill=10, rebuild=2, rebuild_context=1)
    out = run_sequence(model, ids, StreamingLLM(sinks=4), cfg, controller=_FixedRebuild(), record=True)
    slots = out["slots"]
    rebuilt = sum(len(r) for r in out["rebuilt"])
    assert rebuilt >= 20 and slots["ids"].numel() == 30 + rebuilt
    assert torch.equal(slots["ids"][:30], ids) and torch.equal(slots["positions"][:30], torch.arange(30))
    with torch.no_grad():
        exact = model(
            slots["ids"][None],
            position_ids=slots["positions"][None],
            attention_mask=additive_mask(slots["visible"][None], torch.float32),
        ).logits[0, : 30 - 1]
        approximate = model(
            ids[None], attention_mask=additive_mask(out["visible"][None], torch.float32)
        ).logits
    assert torch.allclose(exact, out["logits"], atol=1e-5)
    assert (
        approximate[0, 10:29] - out["logits"][10:]
    ).abs().max() > 1e-3  # rebuilt K/V are not the originals


def test_lora_fine_tune_trains_only_the_adapters() -> None:
    """``lora_rank > 0`` (the paper-scale path): peft adapters on the projections, merged into a plain model; the
    embeddings and norms untouched, the input model unchanged."""
    n, length = 16, 10
    ids = torch.randint(5, 40, (n, length), generator=torch.Generator().manual_seed(4))
    slots = [{"ids": ids[i], "positions": torch.arange(length), "visible": torch.ones(length, length).tril().bool()}
             for i in range(n)]  # fmt: skip
    loss_mask = torch.ones(n, length, dtype=torch.bool)
    base = _lm()
    tuned = finetune_lm(
        base, slots, loss_mask, FinetuneConfig(steps=5, lr=1e-2, lora_rank=4, sequences=n), progress=False
    )
    assert type(tuned) is type(base)
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert len(changed) == 2 * 7 and all(k.endswith("proj.weight") for k in changed), changed
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), _lm().state_dict().values()))
