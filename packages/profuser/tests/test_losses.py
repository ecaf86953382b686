"""The fusion loss on hand-computed values, its reductions, and the off-by-one end to end."""

import math

import numpy as np
import pytest
import torch

from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from profuser.align import VocabMapping
from profuser.generate import encode_pairs, response_loss
from profuser.losses import fusion_loss, teacher_weights
from profuser.represent import ModelSide, Sample, represent_batch
from profuser.trainer import FusionCollator, to_item


def _one_token_batch(teacher_ids, teacher_logp):
    # student logits at position 0 give p = (1/6, 2/6, 3/6); the label at position 1 is token 2
    logits = torch.log(torch.tensor([[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]]))
    labels = torch.tensor([[-100, 2]])
    ids = torch.tensor([[[-1, -1], teacher_ids]])
    logp = torch.tensor([[[0.0, 0.0], teacher_logp]])
    return logits, labels, ids, logp


def test_hand_computed_value():
    # teacher top-2: token 2 with p 0.6, token 1 with p 0.2 -> renormalised over the two: 0.75, 0.25
    logits, labels, ids, logp = _one_token_batch([2, 1], [math.log(0.6), math.log(0.2)])
    out = fusion_loss(logits, labels, ids, logp, lam=0.9)
    ce = math.log(2)  # -log 3/6
    fusion = -(0.75 * math.log(0.5) + 0.25 * math.log(2 / 6))
    assert out.clm.item() == pytest.approx(ce, abs=1e-6)
    assert out.fusion.item() == pytest.approx(fusion, abs=1e-6)  # 0.7945
    assert out.total.item() == pytest.approx(0.9 * ce + 0.1 * fusion, abs=1e-6)  # 0.7033
    assert out.covered.item() == 1.0


def test_unmapped_entries_are_dropped_and_rows_without_source_fall_back_to_the_label():
    logits, labels, ids, logp = _one_token_batch([2, -1], [math.log(0.6), math.log(0.2)])
    out = fusion_loss(logits, labels, ids, logp, lam=0.5)
    assert out.fusion.item() == pytest.approx(math.log(2), abs=1e-6)  # all weight on token 2
    logits, labels, ids, logp = _one_token_batch([-1, -1], [0.0, 0.0])
    out = fusion_loss(logits, labels, ids, logp, lam=0.3)
    assert out.fusion.item() == pytest.approx(out.clm.item()) and out.covered.item() == 0.0
    assert teacher_weights(torch.zeros(2), torch.tensor([-1, -1])).sum() == 0


def test_lam_one_is_plain_sft():
    tok = train_tiny_tokenizer(["add 1 2 = 3", "rev abc = cba"] * 3, vocab_size=280)
    model = tiny_causal_lm(tokenizer=tok, seed=0)
    batch = encode_pairs(tok, [("add 1 2 =", " 3"), ("rev abc =", " cba")])
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    k = 4
    junk_ids = torch.randint(0, len(tok), (*batch["input_ids"].shape, k))
    out = fusion_loss(logits, batch["labels"], junk_ids, torch.randn(junk_ids.shape), lam=1.0)
    assert out.total.item() == pytest.approx(response_loss(model, batch).item(), rel=1e-5)


def test_off_by_one_end_to_end_student_equal_to_source_sits_at_the_minimum():
    """Same tokenizer, k = |V|, student = source: the stored rows must be the source's distribution one position
    before each label, so the fusion loss equals the entropy and its gradient vanishes. A row shifted by one
    position would give a larger loss and a non-zero gradient."""
    tok = train_tiny_tokenizer(
        ["add 1 2 = 3", "rev abc = cba", "how to make a kite = first get"] * 3, vocab_size=300
    )
    model = tiny_causal_lm(tokenizer=tok, seed=1)
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)  # peaked, position-dependent distributions: a shift must show
    side = ModelSide("same", model, tok)
    mapping = VocabMapping.between(tok, tok)
    assert (mapping.table == np.arange(len(tok))).all()
    samples = [Sample("a", "add 1 2 =", " 3"), Sample("b", "rev abc =", " cba")]
    reps = represent_batch(side, side, mapping, samples, k=len(tok))
    batch = FusionCollator(tok.pad_token_id)([to_item(r) for r in reps])
    # the CE stored with each sample is the source's own response loss
    pairs = encode_pairs(tok, [(s.prompt, s.response) for s in samples])
    for rep, (p, r) in zip(reps, [(s.prompt, s.response) for s in samples], strict=True):
        single = encode_pairs(tok, [(p, r)])
        assert rep.ce == pytest.approx(response_loss(model, single).item(), rel=1e-4)
    assert torch.equal(batch["input_ids"], pairs["input_ids"])
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    logits.requires_grad_(True)
    out = fusion_loss(logits, batch["labels"], batch["teacher_ids"], batch["teacher_logp"], lam=0.0)
    out.total.backward()
    p = torch.softmax(logits[:, :-1], -1)
    entropy = -(p * torch.log(p)).sum(-1)
    mask = batch["labels"][:, 1:] != -100
    assert out.total.item() == pytest.approx((entropy * mask).sum().item() / mask.sum().item(), abs=2e-3)
    assert logits.grad.abs().max().item() < 1e-3
    # the same rows moved one position later are a worse target
    shifted = {k: torch.roll(batch[k], 1, dims=1) for k in ("teacher_ids", "teacher_logp")}
    shifted["teacher_ids"][:, 0] = -1
    worse = fusion_loss(
        logits.detach(), batch["labels"], shifted["teacher_ids"], shifted["teacher_logp"], lam=0.0
    )
    assert worse.total.item() > out.total.item() + 1.0
