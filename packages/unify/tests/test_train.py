"""Training behaviour: the sparsity penalty makes vectors sparser, grounding puts a caption's own words on top,
and an interrupted run resumes to exactly the uninterrupted result."""

import dataclasses

import pytest
import torch

from unify.evaluate import lexicon_precision_at_k
from unify.train import TrainConfig, train

SMALL = {"image_size": 16, "width": 32, "layers": 2, "shared_layers": 1, "heads": 2, "embed_dim": 16}


def text_lexicon(model, tokenizer, data, n=128):
    _, captions, concepts = data.batch(torch.arange(n))
    with torch.no_grad():
        _, lex = model.encode_text(*tokenizer.encode(captions))
    return lex, concepts


def test_nonzeros_fall_as_the_sparsity_weight_rises(make_model, tokenizer, mini_splits):
    train_set, test_set = mini_splits
    nnz = {}
    for weight in (0.0, 0.3, 3.0):
        model = make_model(**SMALL)
        # a light activation term, so the contrast and the penalty decide which dimensions stay on
        cfg = TrainConfig(
            steps=40,
            batch_size=32,
            stage1_steps=0,
            flops_weight=weight,
            lr=2e-3,
            activation_weight_stage2=0.2,
        )
        train(model, train_set, tokenizer, "lexicon", cfg, progress=False)
        lex, _ = text_lexicon(model, tokenizer, test_set)
        assert (lex >= 0).all()
        nnz[weight] = float((lex > 0).sum(1).float().mean())
    # 18 concept dimensions; without the penalty most stay active, a strong penalty zeroes most of them
    assert nnz[0.0] > nnz[0.3] > nnz[3.0], nnz
    assert nnz[3.0] < 0.5 * nnz[0.0], nnz


def test_grounding_puts_the_captions_own_words_on_top(make_model, tokenizer, mini_splits):
    train_set, test_set = mini_splits
    model = make_model(**SMALL)
    before = lexicon_precision_at_k(*text_lexicon(model, tokenizer, test_set), tokenizer, 5)
    cfg = TrainConfig(steps=100, batch_size=32, stage1_steps=100, lr=3e-3)
    train(model, train_set, tokenizer, "lexicon", cfg, progress=False)
    after = lexicon_precision_at_k(*text_lexicon(model, tokenizer, test_set), tokenizer, 5)
    # 6 content words among 18 concept dimensions: chance P@5 is 6/18 = 0.33; the floor is 0.8 on held-out
    # combinations (captions whose (colour, shape) pairs were never seen in training)
    assert before < 0.5, before
    assert after >= 0.8, (before, after)


class Interrupt(RuntimeError):
    pass


class StopAfter:
    """Data that raises after ``n`` batches: a crash in the middle of training."""

    def __init__(self, data, n):
        self.data, self.n, self.calls = data, n, 0

    def __len__(self):
        return len(self.data)

    def batch(self, index):
        self.calls += 1
        if self.calls > self.n:
            raise Interrupt
        return self.data.batch(index)


def test_resume_after_interruption_equals_an_uninterrupted_run(make_model, tokenizer, mini_splits, tmp_path):
    train_set, _ = mini_splits
    cfg = TrainConfig(steps=8, batch_size=8, stage1_steps=3, checkpoint_every=4, lr=1e-3)
    torch.manual_seed(0)
    whole = make_model(**SMALL)
    full = train(whole, train_set, tokenizer, "unify", cfg, progress=False)

    torch.manual_seed(0)
    first = make_model(**SMALL)
    ckpt = tmp_path / "unify.ckpt"
    with pytest.raises(Interrupt):
        train(first, StopAfter(train_set, 6), tokenizer, "unify", cfg, checkpoint=ckpt, progress=False)
    assert ckpt.exists()
    resumed = make_model(
        **{**SMALL, "seed": 1}
    )  # different weights: everything must come from the checkpoint
    history = train(resumed, train_set, tokenizer, "unify", cfg, checkpoint=ckpt, progress=False)

    assert [h["loss"] for h in history] == [h["loss"] for h in full]  # bit for bit on CPU
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"train\.stage1_steps"):
        TrainConfig(steps=10, stage1_steps=11)
    with pytest.raises(ValueError, match=r"train\.distill_direction"):
        dataclasses.replace(TrainConfig(), distill_direction="both")
