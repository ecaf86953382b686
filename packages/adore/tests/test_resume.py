"""Work survives an interruption (issue 28, item 7): the recall LM, the text LM and the controller save their
training state every N steps, atomically, and a run stopped after k steps and resumed ends with the same weights,
bit for bit on CPU, as an uninterrupted one; a finished checkpoint is loaded instead of retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import adore.controller
import adore.tasks
from adore.controller import ControllerConfig, train_controller
from adore.tasks import RecallConfig, sample, train_recall_lm
from paperlab.models import tiny_causal_lm
from paperlab.testing import kill_and_resume

TASK = RecallConfig(n_keys=8, n_values=8, n_filler=4, n_pairs=3, filler_run=1, n_queries=2)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """Names of the tensors that differ (empty: equal bit for bit)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


def _stop_at(monkeypatch, owner, name: str, call: int) -> None:
    """Make ``owner.name`` raise KeyboardInterrupt (Ctrl-C) at its ``call``-th call."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def test_recall_lm_stopped_after_k_steps_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch) -> None:
    steps, every = 12, 4
    whole = train_recall_lm(TASK, steps=steps, batch=4, seed=0, progress=False)

    ckpt = tmp_path / "lm.pt"
    with monkeypatch.context() as patch:  # Ctrl-C in step 7 (odd steps draw a curriculum batch: call 4)
        _stop_at(patch, adore.tasks, "repeat_batch", 4)
        with pytest.raises(KeyboardInterrupt):
            train_recall_lm(
                TASK, steps=steps, batch=4, seed=0, checkpoint=ckpt, progress=False, checkpoint_every=every
            )
    state = torch.load(ckpt, weights_only=False)
    assert state["step"] == 4  # the last checkpoint before the interrupt; steps 5-7 are lost, not more
    assert not list(tmp_path.glob(".*.tmp"))

    resumed = train_recall_lm(
        TASK, steps=steps, batch=4, seed=0, checkpoint=ckpt, progress=False, checkpoint_every=every
    )
    assert _same_weights(whole, resumed) == []
    assert torch.load(ckpt, weights_only=False)["step"] == steps

    # a finished checkpoint is loaded, not retrained: training would call the batch sampler
    with monkeypatch.context() as patch:
        _stop_at(patch, adore.tasks, "sample", 1)
        loaded = train_recall_lm(TASK, steps=steps, batch=4, seed=0, checkpoint=ckpt, progress=False)
    assert _same_weights(whole, loaded) == []


@pytest.mark.parametrize("batch_size", [1, 3])
def test_controller_stopped_after_k_steps_resumes_to_the_uninterrupted_weights(
    tmp_path, monkeypatch, batch_size
) -> None:
    lm = tiny_causal_lm(vocab_size=TASK.vocab_size, layers=1, hidden=16, heads=2, attn_implementation="eager")
    seqs, _ = sample(TASK, 2, seed=1)
    cfg = ControllerConfig(dim=8, top_k=2, sequences=2, epochs=2, checkpoint_every=10, batch_size=batch_size)
    examples = 2 * 2 * (TASK.length - 2)  # two examples (release, rebuild) per inner position and sequence
    per_epoch = -(-examples // batch_size)  # optimizer steps
    whole = train_controller(lm, seqs, cfg, progress=False)

    ckpt = tmp_path / "controller.pt"
    stop = per_epoch + 15  # in the second epoch, 5 steps after a checkpoint
    with monkeypatch.context() as patch:
        _stop_at(patch, adore.controller, "batch_loss", stop)
        with pytest.raises(KeyboardInterrupt):
            train_controller(lm, seqs, cfg, progress=False, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=False)["step"] == (stop - 1) // 10 * 10

    resumed = train_controller(lm, seqs, cfg, progress=False, checkpoint=ckpt)
    assert _same_weights(whole, resumed) == []
    assert torch.load(ckpt, weights_only=False)["step"] == 2 * per_epoch
    with monkeypatch.context() as patch:  # finished: loaded without a training step
        _stop_at(patch, adore.controller, "batch_loss", 1)
        loaded = train_controller(lm, seqs, cfg, progress=False, checkpoint=ckpt)
    assert _same_weights(whole, loaded) == []


def test_text_lm_stopped_after_k_steps_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch) -> None:
    from torch.nn import functional

    from adore.lm import LMExperimentConfig, train_text_lm

    cfg = LMExperimentConfig(
        window=16, prefill=4, layers=1, hidden=16, heads=2, steps=10, batch=2, checkpoint_every=3
    )
    windows = torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(0))
    whole = train_text_lm(cfg, windows, 50, tmp_path / "whole.pt")
    ckpt = tmp_path / "lm.pt"
    with monkeypatch.context() as patch:  # Ctrl-C in step 8: the loss of every step is one cross_entropy call
        _stop_at(patch, functional, "cross_entropy", 8)
        with pytest.raises(KeyboardInterrupt):
            train_text_lm(cfg, windows, 50, ckpt)
    assert torch.load(ckpt, weights_only=False)["step"] == 6
    resumed = train_text_lm(cfg, windows, 50, ckpt)
    assert _same_weights(whole, resumed) == []


RECALL = [
    "experiment=recall",
    "task.n_pairs=4",
    "task.filler_run=1",
    "task.n_queries=2",
    "lm_steps=24",
    "checkpoint_every=6",
    "controller.dim=16",
    "controller.sequences=2",
    "controller.epochs=1",
    "controller.checkpoint_every=15",
    "eval_sequences=2",
    "budgets=[0.5]",
    "policies=[full,random,adore+rebuild]",
    "finetune.steps=12",
    "finetune.sequences=4",
    "finetune.batch_size=2",
    "progress=false",
]


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "results" / "adore" / "recall" / "metrics.json").read_text())


@pytest.mark.slow
def test_cli_killed_and_rerun_ends_with_the_uninterrupted_metrics(tmp_path) -> None:
    """``python -m adore experiment=recall`` (tiny) SIGTERMed after a random atomic write (an LM or controller
    checkpoint, or a result file) and rerun: exit 143 with a resume line, no half-written file, the same
    metrics.json as one uninterrupted run."""
    import sys

    env = {"PAPERLAB_CACHE": "cache", "PAPERLAB_RESULTS": "results"}  # relative: inside each run's folder
    # seed 7 kills after writes 3 and 6 of 15: in the LM's and in the controller's training (a kill after the last
    # write can land in the interpreter's shutdown, after hydra_entry gave SIGTERM back to the default: exit -15)
    args = [sys.executable, "-m", "adore", *RECALL]
    result = kill_and_resume(args, workdir=tmp_path, outputs=_metrics, kills=2, seed=7, env=env)
    assert result.reference_writes == 4 + 5 + 2 + 4, (
        result
    )  # LM, controller, fine-tune checkpoints, 4 results
    assert [k["after_write"] for k in result.kills] == [3, 6]
    assert result.landed == 2, result.kills
