"""Every derived file is keyed by what it was derived from (``paperlab.io.derived_key``, issue 28 item 1): a changed
setting or input is never served the stale result; and the tiny sources' training resumes from its checkpoint to
the result of an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch

import profuser.sources
from paperlab.config import compose, from_config
from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from profuser.experiment import ExperimentConfig, target_tokenizer
from profuser.represent import ModelSide, RepresentationStore, Sample
from profuser.sources import LMTrainConfig, TinySourceSpec, tiny_source, train_lm
from profuser.world import build_world

PAIRS = [(f"add {i} 1 =", f" {i + 1}") for i in range(60)]
SPEC = TinySourceSpec("add", 270, layers=1, hidden=16)
TRAIN = LMTrainConfig(steps=3, batch=4, warmup=1, save_steps=0)


def _key(folder) -> str:
    return json.loads((folder / "source.json").read_text())["key"]


def test_a_tiny_source_is_retrained_when_a_setting_or_any_training_pair_changes(tmp_path):
    tiny_source(SPEC, PAIRS, TRAIN, tmp_path, progress=False)
    first = _key(tmp_path)
    tiny_source(SPEC, PAIRS, TRAIN, tmp_path, progress=False)
    assert _key(tmp_path) == first  # same settings, same pairs: reused
    changed = [*PAIRS[:55], ("add 55 1 =", " 57"), *PAIRS[56:]]  # a pair past the 50th
    tiny_source(SPEC, changed, TRAIN, tmp_path, progress=False)
    second = _key(tmp_path)
    assert second != first
    slower = LMTrainConfig(steps=3, batch=4, warmup=1, lr=1e-3, save_steps=0)
    tiny_source(SPEC, changed, slower, tmp_path, progress=False)
    assert _key(tmp_path) not in (first, second)


def test_source_training_resumes_from_its_checkpoint_to_the_uninterrupted_result(tmp_path, monkeypatch):
    tok = train_tiny_tokenizer([p + r for p, r in PAIRS], vocab_size=270)
    cfg = LMTrainConfig(steps=6, batch=4, warmup=1, save_steps=2)

    def fresh():
        return tiny_causal_lm(tokenizer=tok, layers=1, hidden=16, seed=0)

    whole = fresh()
    losses = train_lm(whole, tok, PAIRS, cfg, progress=False)
    calls, real = [0], profuser.sources.response_loss

    def killed_at_step_5(model, batch):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return real(model, batch)

    monkeypatch.setattr(profuser.sources, "response_loss", killed_at_step_5)
    ckpt = tmp_path / "train.pt"
    with pytest.raises(KeyboardInterrupt):
        train_lm(fresh(), tok, PAIRS, cfg, progress=False, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    monkeypatch.setattr(profuser.sources, "response_loss", real)
    resumed = fresh()
    assert train_lm(resumed, tok, PAIRS, cfg, progress=False, checkpoint=ckpt) == losses
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_store_is_rebuilt_when_a_prompt_or_the_source_model_changes(tmp_path):
    tok = train_tiny_tokenizer(["add 1 2 = 3", "rev ab = ba"] * 3, vocab_size=270)
    src = ModelSide("src", tiny_causal_lm(tokenizer=tok, layers=1, hidden=16, seed=0), tok, fingerprint="a")
    target = ModelSide("target", tiny_causal_lm(tokenizer=tok, layers=1, hidden=16, seed=1), tok)
    samples = [Sample("s0", "add 1 2 =", " 3"), Sample("s1", "rev ab =", " ba")]
    store = RepresentationStore(tmp_path / "store").build(src, target, samples, k=2, progress=False)
    assert store.is_complete(RepresentationStore.key(src.ident, target.ident, samples, 2))
    reprompted = [Sample("s0", "add 2 1 =", " 3"), samples[1]]  # same uid and response, another prompt
    assert not store.is_complete(RepresentationStore.key(src.ident, target.ident, reprompted, 2))
    other = ModelSide("src", src.model, tok, fingerprint="b")  # same name, another model
    assert not store.is_complete(RepresentationStore.key(other.ident, target.ident, samples, 2))
    before = store.load()["s0"].target_ids.tolist()
    rebuilt = store.build(src, target, reprompted, k=2, progress=False).load()["s0"].target_ids.tolist()
    assert (
        rebuilt != before and rebuilt[: len(tok("add 2 1 =")["input_ids"])] == tok("add 2 1 =")["input_ids"]
    )


def _cfg(*overrides: str) -> ExperimentConfig:
    return from_config(ExperimentConfig, compose("profuser", ["experiment=tiny", *overrides]))


def test_the_target_tokenizer_is_retrained_when_its_vocabulary_size_changes(tmp_path):
    texts = [f"add {i} {j} = {i + j}" for i in range(20) for j in range(20)]
    small, key_small = target_tokenizer(_cfg("target.vocab_size=280"), texts, tmp_path)
    large, key_large = target_tokenizer(_cfg("target.vocab_size=330"), texts, tmp_path)
    assert len(small) == 280 and len(large) > 290 and key_small != key_large
    again, key_again = target_tokenizer(_cfg("target.vocab_size=330"), texts, tmp_path)
    assert len(again) == len(large) and key_again == key_large


def test_source_fingerprints_and_the_runs_key_follow_the_settings_and_the_corpus_file(tmp_path):
    from profuser.modes import source_fingerprint  # new in issue 28

    cfg = _cfg("world.n_source=40")
    world = build_world(cfg.world)
    base = source_fingerprint(cfg, cfg.sources[0], world)
    assert (
        source_fingerprint(_cfg("world.n_source=40", "source_train.steps=7"), cfg.sources[0], world) != base
    )
    assert (
        source_fingerprint(_cfg("world.n_source=40", "source_train.save_steps=7"), cfg.sources[0], world)
        == base
    )
    assert _cfg("train.lr=0.01").results_key() != _cfg().results_key()
    assert _cfg("train.save_steps=7", "name=x", "seeds=[3]").results_key() == _cfg().results_key()
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"conversations": [{"value": "p"}, {"value": "r"}]}\n', encoding="utf-8")
    paper = ["experiment=paper", f"data.dataset={corpus}"]
    first = from_config(ExperimentConfig, compose("profuser", paper)).results_key()
    corpus.write_text('{"conversations": [{"value": "p"}, {"value": "other"}]}\n', encoding="utf-8")
    assert from_config(ExperimentConfig, compose("profuser", paper)).results_key() != first
