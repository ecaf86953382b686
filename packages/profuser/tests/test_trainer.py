"""ProFuserTrainer: the loss falls, and an interrupted run resumed from its checkpoint ends where one run ends."""

import numpy as np
import torch
from transformers import TrainerCallback

from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from profuser.represent import SampleRep
from profuser.trainer import ProFuserConfig, ProFuserTrainer, to_item

PAIRS = [("add 1 2 =", " 3"), ("add 2 2 =", " 4"), ("rev abc =", " cba"), ("copy fed =", " fed")] * 4


def _items(tok, k=3):
    items = []
    for i, (p, r) in enumerate(PAIRS):
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
