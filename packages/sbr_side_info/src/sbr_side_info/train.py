"""One training loop for every model: full softmax cross-entropy over all items (or GRU4Rec's sampled BPR-max /
TOP1-max, :mod:`sbr_side_info.losses`), Adam with L2 and step decay
(SR-GNN Sec. 4.1: lr 1e-3, decayed x0.1 every 3 epochs, L2 1e-5, batch 100), early stopping on validation HR@20 +
MRR@20 with ``patience`` epochs, per-epoch metrics, atomic checkpoints (after every epoch and every
``checkpoint_every`` steps inside one) and exact resume: an interrupted run, rerun, ends with the same weights and
metrics as an uninterrupted one (the batch order of an epoch is a function of the seed and the epoch, and the RNG
states, optimizer and scheduler are restored).

Speed (issue 31), every part switchable in :class:`TrainConfig`: the fused Adam kernel (``fused_adam``), batches
gathered from arrays built once per split (:class:`~sbr_side_info.batch.CaseTable`), GRUs over packed sequences
(``packed_gru``: a row costs its own length, not the batch's longest), and the full-ranking scorer in bfloat16 while
training (``bf16_scorer``: ``auto`` = where the CPU has ``avx512_bf16`` / ``amx_bf16`` or on CUDA). These keep the
numbers (same batches, same math up to bf16 rounding). Length-bucketed batches (``bucket_batches``: sort by prefix
length within chunks of that many batches, shuffle the batches) pad less but make every batch length-homogeneous,
which changed the results on the Diginetica sample (README); they are off by default."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.device import Timer
from paperlab.io import load_checkpoint, save_checkpoint
from paperlab.seed import seed_everything
from sbr_side_info.batch import case_table, collate, length_bucketed_batches
from sbr_side_info.evaluate import evaluate
from sbr_side_info.losses import LOSSES, NegativeSampler, cross_entropy, sampled_candidates, sampled_loss
from sbr_side_info.models import build_model
from sbr_side_info.schema import Prepared

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    dim: int = 100
    hidden: int | None = None  # NARM's GRU size (None = dim); the NARM paper: dim 50, hidden 100
    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    l2: float = 1e-5
    lr_decay_every: int = 3
    lr_decay: float = 0.1
    patience: int = 10
    eval_batch_size: int = 500
    eval_test_every_epoch: bool = True  # per-epoch test metrics for the metric-vs-epoch plot
    max_steps_per_epoch: int | None = None  # cap for quick runs (None = full epochs)
    seed: int = 0
    device: str = "cpu"
    checkpoint: str = ""  # a path: saved atomically after every epoch; an existing one is resumed
    checkpoint_every: int = 1000  # also save every N steps inside an epoch (0 = per epoch only)
    progress: bool = True
    ks: list[int] = field(default_factory=lambda: [10, 20])
    loss: str = "ce"  # ce | bpr-max | top1-max (GRU4Rec 2018's sampled losses)
    n_sample: int = 2048  # sampled losses: extra negatives per step, shared by the batch (GRU4Rec's n_sample)
    sample_alpha: float = 0.75  # sampled losses: P(item) ~ support^alpha (GRU4Rec's sample_alpha)
    bpreg: float = 1.0  # BPR-max score regularisation (GRU4Rec's bpreg)
    bucket_batches: int = 0  # length-bucketed batches: sort within chunks of N batches (0 = random batches)
    packed_gru: bool = True  # GRUs over packed sequences (each row costs its own length; the same states)
    fused_adam: bool = True  # torch.optim.Adam(fused=True)
    bf16_scorer: str = "auto"  # auto | on | off: the training scorer matmul in bfloat16

    def __post_init__(self) -> None:
        require(self.dim >= 1, "dim", self.dim, ">= 1")
        require(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        require(self.lr > 0, "lr", self.lr, "> 0")
        require(self.l2 >= 0, "l2", self.l2, ">= 0")
        require(self.lr_decay_every >= 1, "lr_decay_every", self.lr_decay_every, ">= 1")
        require(0 < self.lr_decay <= 1, "lr_decay", self.lr_decay, "in (0, 1]")
        require(self.patience >= 1, "patience", self.patience, ">= 1")
        require(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0 (0 = per epoch)")
        require(20 in self.ks, "ks", self.ks, "a list containing 20 (early stopping uses HR@20 + MRR@20)")
        require(self.hidden is None or self.hidden >= 1, "hidden", self.hidden, "None or >= 1")
        require(self.loss in LOSSES, "loss", self.loss, f"one of {', '.join(LOSSES)}")
        require(self.n_sample >= 0, "n_sample", self.n_sample, ">= 0")
        require(self.bpreg >= 0, "bpreg", self.bpreg, ">= 0")
        require(self.bucket_batches >= 0, "bucket_batches", self.bucket_batches, ">= 0 (0 = random batches)")
        require(self.bf16_scorer in ("auto", "on", "off"), "bf16_scorer", self.bf16_scorer, "auto, on or off")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16_scorer(cfg: TrainConfig) -> bool:
    if cfg.bf16_scorer != "auto":
        return cfg.bf16_scorer == "on"
    if str(cfg.device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return str(cfg.device) == "cpu" and cpu_has_bf16()


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    fused = cfg.fused_adam and str(cfg.device).split(":")[0] in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.l2, fused=fused or None)


def _criterion(metrics: dict[str, float]) -> float:
    return metrics["HR@20"] + metrics["MRR@20"]


def train_model(name: str, data: Prepared, cfg: TrainConfig) -> dict[str, Any]:
    """Train ``name`` on ``data.train``; returns ``{"model", "history", "best_epoch", "valid", "test",
    "best_test", "seconds_per_epoch", "samples_per_s"}`` (``test``: at the best validation epoch; ``best_test``:
    the best test epoch, which is what SR-GNN's official script reports)."""
    seed_everything(cfg.seed)
    model = build_model(name, data, cfg.dim, cfg.hidden).to(cfg.device)
    model.bf16_scorer = use_bf16_scorer(cfg)
    model.packed = cfg.packed_gru
    if cfg.loss != "ce" and not model.supports_sampled:
        raise ValueError(f"train.loss={cfg.loss!r}: {name} has no single scorer; use loss=ce")
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)
    state: dict[str, Any] = {"history": [], "best": None, "best_state": None, "bad_epochs": 0, "seconds": []}
    start_epoch = 0
    partial: dict[str, Any] | None = (
        None  # where a mid-epoch checkpoint stopped: epoch, step, loss sums, seconds
    )
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    if ckpt is not None and ckpt.is_file():
        loaded = load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
        state = loaded["extra"]
        start_epoch = loaded["step"]
        partial = state.pop("partial", None)
        at = f", step {partial['step']} of epoch {start_epoch + 1}" if partial else ""
        log.info("%s: resumed from %s after epoch %d%s", name, ckpt, start_epoch, at)

    valid_cases = data.valid if len(data.valid) else data.test
    lengths = case_table(data.train).lengths
    sampler = None
    if cfg.loss != "ce":
        sampler = NegativeSampler(case_table(data.train).labels, data.n_items, cfg.n_sample, cfg.sample_alpha)
    generator = torch.Generator()
    pin = str(cfg.device).startswith("cuda")
    for epoch in range(start_epoch, cfg.epochs):
        if state["bad_epochs"] >= cfg.patience:
            break
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        batches = length_bucketed_batches(lengths, cfg.batch_size, rng, cfg.bucket_batches)
        if cfg.max_steps_per_epoch is not None:
            batches = batches[: cfg.max_steps_per_epoch]
        model.train()
        total, seen, done, before = 0.0, 0, 0, 0.0
        if partial is not None and partial["epoch"] == epoch:  # resume inside the epoch: same batches, RNG
            total, seen, done, before = partial["total"], partial["seen"], partial["step"], partial["seconds"]
        partial = None
        bar = tqdm(batches[done:], desc=f"{name} epoch {epoch + 1}", disable=not cfg.progress, leave=False)
        with Timer() as timer:
            t0 = time.perf_counter()
            for step, index in enumerate(bar, start=done + 1):
                batch = collate(data, data.train, index, graph=model.needs_graph)
                batch = batch.pin_memory().to(cfg.device, non_blocking=True) if pin else batch.to(cfg.device)
                if sampler is None:
                    loss = cross_entropy(model(batch), batch.labels)
                else:  # GRU4Rec's sampled loss: the batch's targets + shared samples (seeded per step: resumable)
                    generator.manual_seed(cfg.seed * 1_000_003 + epoch * 100_003 + step)
                    ids, negative = sampled_candidates(batch.labels, sampler.sample(generator))
                    vectors = model.candidate_vectors(ids.to(cfg.device))
                    loss = sampled_loss(
                        cfg.loss, model.session(batch), vectors, batch.labels, ids, negative, cfg.bpreg
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
                seen += len(index)
                bar.set_postfix(loss=f"{total / seen:.3f}")
                every = cfg.checkpoint_every
                if ckpt is not None and every and step % every == 0 and step < len(batches):
                    # mid-epoch (the last step is followed by the epoch's own checkpoint)
                    mid = {"epoch": epoch, "step": step, "total": total, "seen": seen}
                    mid["seconds"] = before + time.perf_counter() - t0
                    save_checkpoint(
                        ckpt, model=model, optimizer=optimizer, scheduler=scheduler, step=epoch,
                        extra={**state, "partial": mid},
                    )  # fmt: skip
        timer.seconds += before
        scheduler.step()
        valid = evaluate(model, data, valid_cases, cfg.ks, cfg.eval_batch_size, cfg.device)
        test = None
        if cfg.eval_test_every_epoch:
            same = valid_cases is data.test  # no validation split (the official SR-GNN protocol)
            test = (
                valid if same else evaluate(model, data, data.test, cfg.ks, cfg.eval_batch_size, cfg.device)
            )
        row = {
            "epoch": epoch + 1,
            "loss": total / seen,
            "seconds": timer.seconds,
            "samples_per_s": seen / timer.seconds,
            "valid": valid,
            "test": test,
        }
        state["history"].append(row)
        state["seconds"].append(timer.seconds)
        if state["best"] is None or _criterion(valid) > _criterion(state["best"]["valid"]):
            state["best"] = {"epoch": epoch + 1, "valid": valid}
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        log.info(
            "%s epoch %d: loss %.4f valid HR@20 %.2f MRR@20 %.2f (%.1fs)",
            name,
            epoch + 1,
            row["loss"],
            valid["HR@20"],
            valid["MRR@20"],
            timer.seconds,
        )
        if ckpt is not None:
            save_checkpoint(
                ckpt, model=model, optimizer=optimizer, scheduler=scheduler, step=epoch + 1, extra=state
            )

    model.load_state_dict(state["best_state"])
    test = evaluate(model, data, data.test, cfg.ks, cfg.eval_batch_size, cfg.device)
    tests = [h["test"] for h in state["history"] if h["test"] is not None]
    best_test = {k: max(t[k] for t in tests) for k in tests[0]} if tests else test
    seconds = state["seconds"]
    return {
        "model": model,
        "history": state["history"],
        "best_epoch": state["best"]["epoch"],
        "valid": state["best"]["valid"],
        "test": test,
        "best_test": best_test,
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "samples_per_s": float(np.mean([h["samples_per_s"] for h in state["history"]])),
    }
