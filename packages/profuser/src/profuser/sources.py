"""Source LMs: loaded from the hub (paper scale) or built and trained in the tiny world, each with its own tokenizer.

In the tiny world each specialist gets a different tokenizer (byte-level BPE of a different size, trained on its own
data) and a different architecture family, so that alignment and vocabulary mapping do real work
(:mod:`profuser.align`). A trained source is saved with ``save_pretrained`` and reused when its folder already
holds one of the same settings.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import atomic_write_json, derived_key, load_checkpoint, read_json, save_checkpoint
from paperlab.models import load_causal_lm, load_tokenizer, tiny_causal_lm, train_tiny_tokenizer
from profuser.generate import encode_pairs, response_loss

log = logging.getLogger(__name__)


@dataclass
class LMTrainConfig:
    """A plain next-token training run on (prompt, response) pairs, loss on the response only."""

    steps: int = 600
    batch: int = 32
    lr: float = 3.0e-3
    warmup: int = 30
    seed: int = 0
    save_steps: int = 200  # a checkpoint every N steps (0: none), from which an interrupted training resumes

    def __post_init__(self) -> None:
        require(self.steps > 0, "steps", self.steps, "> 0")
        require(self.batch > 0, "batch", self.batch, "> 0")
        require(self.lr > 0, "lr", self.lr, "> 0")
        require(self.save_steps >= 0, "save_steps", self.save_steps, ">= 0 (0: no checkpoints)")


def train_lm(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    cfg: LMTrainConfig,
    *,
    desc: str = "train",
    progress: bool = True,
    checkpoint: Path | None = None,
) -> list[float]:
    """AdamW with linear warm-up then cosine decay; returns the loss of every step. With ``checkpoint`` (a file)
    the model, optimizer, schedule, step, losses and every RNG state are saved there atomically every
    ``cfg.save_steps`` steps, and a run that finds one continues from it to the same result."""
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / max(1, cfg.warmup))
            * 0.5
            * (1 + torch.cos(torch.tensor(torch.pi * s / cfg.steps)).item())
        ),
    )
    losses: list[float] = []
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, model=model, optimizer=opt, scheduler=sched)
        start, losses = state["step"], list(state["extra"]["losses"])
        rng.setstate(_tuples(state["extra"]["sampler"]))
        log.info("%s: resumed at step %d of %d from %s", desc, start, cfg.steps, checkpoint)
    model.train()
    for step in tqdm(range(start, cfg.steps), desc=desc, disable=not progress, leave=False, initial=start,
                     total=cfg.steps):  # fmt: skip
        batch = encode_pairs(tokenizer, [pairs[rng.randrange(len(pairs))] for _ in range(cfg.batch)])
        loss = response_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        done = step + 1
        if checkpoint is not None and cfg.save_steps and done % cfg.save_steps == 0 and done < cfg.steps:
            extra = {"losses": losses, "sampler": rng.getstate()}
            save_checkpoint(checkpoint, model=model, optimizer=opt, scheduler=sched, step=done, extra=extra)
    model.eval()
    return losses


def _tuples(state):
    """``random.Random.getstate()`` as saved (tuples may come back as lists)."""
    return tuple(_tuples(x) for x in state) if isinstance(state, list | tuple) else state


@dataclass
class TinySourceSpec:
    """One tiny specialist: its skill, tokenizer size and architecture family."""

    skill: str
    vocab_size: int
    family: str = "llama"
    layers: int = 2
    hidden: int = 64


def tiny_source(
    spec: TinySourceSpec,
    pairs: Sequence[tuple[str, str]],
    train: LMTrainConfig,
    out_dir: Path,
    *,
    progress: bool = True,
):
    """Train (or reload) one specialist on ``pairs``; returns (model, tokenizer). The trained source in
    ``out_dir`` is reused only when its :func:`source_key` (its spec, training settings and every pair) is the
    same; an interrupted training resumes from ``out_dir/train-<key>.pt``."""
    key = source_key(spec, pairs, train)
    stamp = out_dir / "source.json"
    if stamp.exists() and read_json(stamp).get("key") == key:
        return load_causal_lm(out_dir, dtype="float32", device="cpu").eval(), load_tokenizer(out_dir)
    tokenizer = train_tiny_tokenizer([p + r for p, r in pairs], vocab_size=spec.vocab_size)
    model = tiny_causal_lm(
        tokenizer=tokenizer, layers=spec.layers, hidden=spec.hidden, family=spec.family, seed=train.seed
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / f"train-{key}.pt"
    losses = train_lm(
        model, tokenizer, pairs, train, desc=f"source {spec.skill}", progress=progress, checkpoint=checkpoint
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(stamp, {"key": key, "spec": asdict(spec), "final_loss": sum(losses[-20:]) / 20})
    checkpoint.unlink(missing_ok=True)
    return model, tokenizer


def source_key(spec: TinySourceSpec, pairs: Sequence[tuple[str, str]], train: LMTrainConfig) -> str:
    """What a trained tiny source is derived from: its spec, its training settings (not ``save_steps``) and its
    training pairs (:func:`paperlab.io.derived_key`)."""
    settings = {k: v for k, v in asdict(train).items() if k != "save_steps"}
    return derived_key({"spec": asdict(spec), "train": settings, "pairs": [list(p) for p in pairs]})
