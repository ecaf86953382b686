"""Source LMs: loaded from the hub (paper scale) or built and trained in the tiny world, each with its own tokenizer.

In the tiny world each specialist gets a different tokenizer (byte-level BPE of a different size, trained on its own
data) and a different architecture family, so that alignment and vocabulary mapping do real work
(:mod:`profuser.align`). A trained source is saved with ``save_pretrained`` and reused when its folder already
holds one of the same settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import atomic_write_json
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

    def __post_init__(self) -> None:
        require(self.steps > 0, "steps", self.steps, "> 0")
        require(self.batch > 0, "batch", self.batch, "> 0")
        require(self.lr > 0, "lr", self.lr, "> 0")


def train_lm(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    cfg: LMTrainConfig,
    *,
    desc: str = "train",
    progress: bool = True,
) -> list[float]:
    """AdamW with linear warm-up then cosine decay; returns the loss of every step."""
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
    model.train()
    losses = []
    for _ in tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False):
        batch = encode_pairs(tokenizer, [pairs[rng.randrange(len(pairs))] for _ in range(cfg.batch)])
        loss = response_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


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
    """Train (or reload) one specialist on ``pairs``; returns (model, tokenizer)."""
    key = hashlib.sha256(
        json.dumps([asdict(spec), asdict(train), list(pairs)[:50], len(pairs)], sort_keys=True).encode()
    ).hexdigest()[:12]
    stamp = out_dir / "source.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return load_causal_lm(out_dir, dtype="float32", device="cpu").eval(), load_tokenizer(out_dir)
    tokenizer = train_tiny_tokenizer([p + r for p, r in pairs], vocab_size=spec.vocab_size)
    model = tiny_causal_lm(
        tokenizer=tokenizer, layers=spec.layers, hidden=spec.hidden, family=spec.family, seed=train.seed
    )
    losses = train_lm(model, tokenizer, pairs, train, desc=f"source {spec.skill}", progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(stamp, {"key": key, "spec": asdict(spec), "final_loss": sum(losses[-20:]) / 20})
    return model, tokenizer
