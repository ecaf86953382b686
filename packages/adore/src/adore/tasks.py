"""A synthetic associative-recall language where the needed token lies far back, and a tiny Llama trained on it.

A sequence: ``BOS``, ``n_pairs`` key-value pairs (distinct keys) separated by runs of filler tokens, then ``SEP`` and
``n_queries`` queries ``k v`` asking for earlier pairs. The answer (``v`` after a queried ``k``) is only predictable by
attending back to the pair, so a cache that released it (and cannot rebuild it) fails, whatever its budget policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import atomic_torch_save

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

    def __post_init__(self) -> None:
        require(self.n_pairs <= self.n_keys, "n_pairs", self.n_pairs, f"<= n_keys ({self.n_keys})")
        require(1 <= self.n_queries <= self.n_pairs, "n_queries", self.n_queries, "in [1, n_pairs]")

    @property
    def vocab_size(self) -> int:
        return FIRST + self.n_keys + self.n_values + self.n_filler

    @property
    def length(self) -> int:
        return 1 + self.n_pairs * (2 + self.filler_run) + 1 + 2 * self.n_queries


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
        asked = torch.randperm(cfg.n_pairs, generator=g)[: cfg.n_queries]
        for q in asked.tolist():
            row += [int(keys[q]), int(vals[q])]
            mask[i, len(row) - 1] = True
        ids[i] = torch.tensor(row)
    return ids, mask


def answer_accuracy(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Accuracy and mean CE on the answer tokens; ``logits (T-1, V)`` row t predicts ``ids[t+1]``."""
    target = ids[1:][mask[1:]]
    pred = logits[mask[1:]]
    return float((pred.argmax(-1) == target).float().mean()), float(F.cross_entropy(pred, target))


def train_recall_lm(
    cfg: RecallConfig,
    steps: int = 1500,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> Any:
    """A tiny Llama (2 layers, d 64, 4 heads, eager attention) trained on the recall language (loss on every
    token after the separator, so it learns to answer queries); returns the model in eval mode."""
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
    if checkpoint is not None and Path(checkpoint).is_file():
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
        log.info("recall LM loaded from %s", checkpoint)
        return model.eval()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    bar = tqdm(range(steps), desc="recall LM", disable=not progress, leave=False)
    for step in bar:
        ids, mask = sample(cfg, batch, seed=10_000 + step)
        logits = model(ids).logits[:, :-1]
        loss = F.cross_entropy(logits[mask[:, 1:]], ids[:, 1:][mask[:, 1:]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    if checkpoint is not None:
        atomic_torch_save(model.state_dict(), checkpoint)
    return model
