"""A synthetic associative-recall language where the needed token lies far back, and a tiny Llama trained on it.

A sequence: ``BOS``, ``n_pairs`` key-value pairs (distinct keys) separated by runs of filler tokens, then ``SEP`` and
``n_queries`` queries ``k v`` asking for earlier pairs, drawn WITH replacement (so no answer can be found by
elimination: a pair asked once may be asked again). The answer (``v`` after a queried ``k``) is only predictable by
attending back to the pair, so a cache that released it (and cannot rebuild it) fails, whatever its budget policy.

Training the LM on the recall language alone stalls at a plateau (it learns the set of pair values, ~1/n_pairs
accuracy, and never the key lookup); interleaving batches of repeated random sequences with a random gap (an
induction-head curriculum: every token of the second copy is predictable only by finding its earlier occurrence and
copying its successor) makes the same model solve recall to ~100% within a few hundred steps.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

PAD, BOS, SEP = 0, 1, 2
FIRST = 3


@dataclass
class RecallConfig:
    n_keys: int = 24
    n_values: int = 24
    n_filler: int = 16
    n_pairs: int = 8
    filler_run: int = 4  # filler tokens after each pair
    n_queries: int = 4
    with_replacement: bool = True  # queries drawn with replacement (no elimination shortcut)

    def __post_init__(self) -> None:
        require(self.n_pairs <= self.n_keys, "n_pairs", self.n_pairs, f"<= n_keys ({self.n_keys})")
        require(self.n_queries >= 1, "n_queries", self.n_queries, ">= 1")
        require(
            self.with_replacement or self.n_queries <= self.n_pairs,
            "n_queries",
            self.n_queries,
            f"<= n_pairs ({self.n_pairs}) when queries are drawn without replacement",
        )

    @property
    def vocab_size(self) -> int:
        return FIRST + self.n_keys + self.n_values + self.n_filler

    @property
    def length(self) -> int:
        return 1 + self.n_pairs * (2 + self.filler_run) + 1 + 2 * self.n_queries


def single_process(scale: Any, where: str) -> None:
    """adore runs as one process (the LM frozen on one device, the controller beside it): ``scale.launch`` must be
    ``single``; ``scale.gpu`` / ``gpu_memory_gib`` name the GPU the dry run checks the config against."""
    require(
        scale.launch == "single",
        f"{where}.launch",
        scale.launch,
        "'single' (adore evaluates a frozen LM in one process; no multi-GPU launch)",
    )


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (restored after; ``0``: leave the count alone). CPU float sums are
    split over threads, so the trained weights and every number after them depend on the thread count (tested: 1 vs
    2 threads give different recall-LM weights after a few steps); the CPU experiments pin it instead of inheriting
    ``OMP_NUM_THREADS``; the GPU (paper) configs set 0."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def source_digest(*modules: Any) -> str:
    """Digest of the source files of ``modules``: part of a trained file's cache key, so that a changed training
    code never reuses weights trained by the old one (the README's numbers then come from the code beside them)."""
    h = hashlib.sha256()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def sample(cfg: RecallConfig, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids (n, L), answer_mask (n, L))``: ``answer_mask[i, t]`` marks the query values (predicted from t-1)."""
    g = torch.Generator().manual_seed(seed)
    keys0, vals0, fill0 = FIRST, FIRST + cfg.n_keys, FIRST + cfg.n_keys + cfg.n_values
    ids = torch.zeros(n, cfg.length, dtype=torch.long)
    mask = torch.zeros(n, cfg.length, dtype=torch.bool)
    for i in range(n):
        keys = keys0 + torch.randperm(cfg.n_keys, generator=g)[: cfg.n_pairs]
        vals = vals0 + torch.randint(cfg.n_values, (cfg.n_pairs,), generator=g)
        row = [BOS]
        for k, v in zip(keys.tolist(), vals.tolist(), strict=True):
            row += [k, v, *(fill0 + torch.randint(cfg.n_filler, (cfg.filler_run,), generator=g)).tolist()]
        row.append(SEP)
        if cfg.with_replacement:
            asked = torch.randint(cfg.n_pairs, (cfg.n_queries,), generator=g)
        else:
            asked = torch.randperm(cfg.n_pairs, generator=g)[: cfg.n_queries]
        for q in asked.tolist():
            row += [int(keys[q]), int(vals[q])]
            mask[i, len(row) - 1] = True
        ids[i] = torch.tensor(row)
    return ids, mask


def repeat_batch(cfg: RecallConfig, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction curriculum: ``BOS x gap x`` with ``x`` random tokens of the task's vocabulary (length drawn from
    [n_pairs, 2 n_pairs]) and a random gap of 0-7 tokens; the mask marks the second copy after its first token."""
    span = int(torch.randint(cfg.n_pairs, 2 * cfg.n_pairs + 1, (1,), generator=g))
    gap = int(torch.randint(0, 8, (1,), generator=g))
    x = torch.randint(FIRST, cfg.vocab_size, (n, span), generator=g)
    filler = torch.randint(FIRST, cfg.vocab_size, (n, gap), generator=g)
    ids = torch.cat([torch.full((n, 1), BOS), x, filler, x], dim=1)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, -span + 1 :] = True
    return ids, mask


def per_query_accuracy(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Accuracy of the i-th query over a batch (``logits (n, T-1, V)``): flat in i means lookup, rising in i means
    the model answers by elimination."""
    hits = (logits.argmax(-1) == ids[:, 1:]) & mask[:, 1:]
    counts = mask[:, 1:].sum(0)
    order = counts.nonzero().squeeze(-1)
    return [float(hits[:, t].sum() / counts[t]) for t in order.tolist()]


def answer_accuracy(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Accuracy and mean CE on the answer tokens; ``logits (T-1, V)`` row t predicts ``ids[t+1]``."""
    target = ids[1:][mask[1:]]
    pred = logits[mask[1:]]
    return float((pred.argmax(-1) == target).float().mean()), float(F.cross_entropy(pred, target))


def fit_lm(
    model: Any,
    next_batch: Callable[[int], tuple[torch.Tensor, ...]],
    steps: int,
    lr: float,
    weight_decay: float,
    pct_start: float,
    desc: str,
    progress: bool = True,
    log_every: int = 50,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    generators: dict[str, torch.Generator] | None = None,
) -> None:
    """Next-token training shared by the package's LMs: AdamW, one-cycle schedule, gradient clipping at 1.
    ``next_batch(step) -> (ids, mask)`` or ``(ids, mask, attention_mask, position_ids)``: the loss covers the tokens
    where ``mask`` is set (all when ``None``); ``attention_mask`` (additive, ``(batch, 1, T, T)``) replaces the
    causal mask and ``position_ids`` the positions 0..T-1 (the ADORE fine-tune trains on the decode's slots,
    :mod:`adore.finetune`).

    With ``checkpoint``, the whole training state (model, optimizer, schedule, step, every RNG and the states of
    ``generators``, the batch samplers) is saved there atomically every ``checkpoint_every`` steps and at the end;
    a call that finds a checkpoint resumes from it, so that an interrupted run ends with the same weights,
    bit for bit, as an uninterrupted one. A finished checkpoint (step = ``steps``) just loads the weights."""
    generators = generators or {}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model=model, optimizer=opt, scheduler=sched)
        start = state["step"]
        for name, gen in generators.items():
            gen.set_state(state["extra"]["generators"][name])
        log.info("%s: resumed from %s at step %d of %d", desc, checkpoint, start, steps)

    def save(step: int) -> None:
        extra = {"generators": {name: gen.get_state() for name, gen in generators.items()}}
        save_checkpoint(checkpoint, model=model, optimizer=opt, scheduler=sched, step=step, extra=extra)

    model.train()
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, leave=False, initial=start, total=steps)
    for step in bar:
        ids, mask, *layout = next_batch(step)
        attention, positions = layout if layout else (None, None)
        logits = model(ids, attention_mask=attention, position_ids=positions).logits[:, :-1]
        target = ids[:, 1:]
        if mask is not None:
            logits, target = logits[mask[:, 1:]], target[mask[:, 1:]]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            log.debug("%s step %d: loss %.3f", desc, step, loss.item())
        done = step + 1
        if checkpoint is not None and (done == steps or (checkpoint_every and done % checkpoint_every == 0)):
            save(done)
    model.eval()


def train_recall_lm(
    cfg: RecallConfig,
    steps: int = 1500,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 0,
) -> Any:
    """A tiny Llama (2 layers, d 64, 4 heads, eager attention) trained on the recall language, loss on the answer
    tokens, every other batch an induction-curriculum batch (:func:`repeat_batch`); returns the model in eval mode.

    ``checkpoint``: the training state, saved every ``checkpoint_every`` steps and at the end (see :func:`fit_lm`);
    a finished one is loaded instead of training, an unfinished one resumed."""
    from paperlab.models import tiny_causal_lm

    model = tiny_causal_lm(
        vocab_size=cfg.vocab_size,
        layers=2,
        hidden=64,
        heads=4,
        max_position=cfg.length + 8,
        seed=seed,
        attn_implementation="eager",
    )
    if checkpoint is not None and checkpoint_finished(checkpoint, steps):
        load_checkpoint(checkpoint, model=model, restore_rng=False)
        log.info("recall LM loaded from %s", checkpoint)
        return model.eval()
    g = torch.Generator().manual_seed(seed + 7)

    def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return repeat_batch(cfg, batch, g) if step % 2 else sample(cfg, batch, seed=10_000 + step)

    fit_lm(
        model,
        next_batch,
        steps,
        lr,
        weight_decay=0.01,
        pct_start=0.1,
        desc="recall LM",
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        generators={"batches": g},
    )
    return model.eval()


def checkpoint_finished(checkpoint: str | Path, steps: int) -> bool:
    """True when ``checkpoint`` holds a training run that reached ``steps``."""
    if not Path(checkpoint).is_file():
        return False
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["step"]) >= steps
