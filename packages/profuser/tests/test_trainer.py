"""ProFuserTrainer: the loss falls, and an interrupted run resumed from its checkpoint ends where one run ends."""

import numpy as np
import torch
from transformers import TrainerCallback

from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from profuser.represent import SampleRep
from profuser.trainer import ProFuserConfig, ProFuserTrainer, to_item

PAIRS = [("add 1 2 =", " 3"), ("add 2 2 =", " 4"), ("rev abc =", " cba"), ("copy fed =", " fed")] * 4


def _items(tok, k=3, pairs=PAIRS):
    items = []
    for i, (p, r) in enumerate(pairs):
        pi = tok(p, add_special_tokens=False)["input_ids"]
        ri = [*tok(r, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        rng = np.random.default_rng(i)
        ids = np.stack([[t, *rng.integers(5, len(tok), k - 1)] for t in ri]).astype(np.int32)
        logp = np.log(np.tile([0.7, 0.2, 0.1], (len(ri), 1))).astype(np.float16)
        items.append(to_item(SampleRep(f"s{i}", np.array(pi + ri, dtype=np.int32), len(pi), ids, logp, 1.0)))
    return items


class _StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save, control.should_training_stop = True, True


def _train(tmp, tok, items, resume=None, callbacks=(), save_steps=None):
    model = tiny_causal_lm(tokenizer=tok, seed=0)
    args = ProFuserConfig(
        output_dir=str(tmp),
        max_steps=8,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        logging_steps=1,
        lam=0.9,
        schedule_kind="linear",
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
    )
    trainer = ProFuserTrainer(model, args, items[:8], items[8:], tok.pad_token_id, callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=resume)
    return model, [h for h in trainer.state.log_history if "loss" in h]


def test_loss_falls_and_resume_equals_one_run(tmp_path):
    tok = train_tiny_tokenizer([p + r for p, r in PAIRS], vocab_size=280)
    items = _items(tok)
    full, history = _train(tmp_path / "full", tok, items)
    assert history[-1]["loss"] < history[0]["loss"] - 0.5
    assert {"loss_clm", "loss_fusion", "loss_covered"} <= set(history[0])
    _train(tmp_path / "cut", tok, items, callbacks=[_StopAt(4)], save_steps=4)
    assert (tmp_path / "cut" / "checkpoint-4").is_dir()
    resumed, _ = _train(
        tmp_path / "cut", tok, items, resume=str(tmp_path / "cut" / "checkpoint-4"), save_steps=4
    )
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


class _Grads(TrainerCallback):
    """Keeps a copy of every gradient right before the (first) optimizer step."""

    def __init__(self, model):
        self.model, self.grads = model, None

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in self.model.named_parameters()}


def _first_step_grads(tmp, tok, items, batch, grad_accum):
    model = tiny_causal_lm(tokenizer=tok, seed=0)
    args = ProFuserConfig(
        output_dir=str(tmp),
        max_steps=1,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=grad_accum,
        learning_rate=1e-3,
        max_grad_norm=0.0,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        lam=0.9,
        schedule_kind="training",
        save_strategy="no",
    )
    grads = _Grads(model)
    ProFuserTrainer(model, args, [], items, tok.pad_token_id, callbacks=[grads]).train()
    return grads.grads


def test_gradient_accumulation_equals_one_step_on_the_whole_batch(tmp_path):
    """Two micro-batches of 2 accumulated give the gradient of one batch of 4 (responses of unequal length, so the
    loss must be normalised by the tokens of the whole accumulated batch, as transformers' num_items_in_batch)."""
    tok = train_tiny_tokenizer([p + r for p, r in PAIRS], vocab_size=280)
    pairs = [
        ("add 1 2 =", " 3"),
        ("rev abc =", " cba cba"),
        ("copy fed =", " fed fed fed"),
        ("add 2 2 =", " 4"),
    ]
    items = _items(tok, pairs=pairs)
    whole = _first_step_grads(tmp_path / "whole", tok, items, batch=4, grad_accum=1)
    split = _first_step_grads(tmp_path / "split", tok, items, batch=2, grad_accum=2)
    assert len({len(it["input_ids"]) - it["n_prompt"] for it in items}) > 1  # unequal token counts
    for name, g in whole.items():
        torch.testing.assert_close(split[name], g, rtol=1e-4, atol=1e-7, msg=name)
