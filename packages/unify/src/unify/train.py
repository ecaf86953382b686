"""One training loop for the three variants compared in the paper's ablations.

- ``latent``: latent branch only, InfoNCE on S_latent (the CLIP4Clip-style baseline; same backbone size).
- ``lexicon``: lexicon branch only, with the two-stage grounding.
- ``unify``: both branches (structure sharing through the stem) + two-stage grounding + self-distillation.

Two-stage semantics grounding (our reading of the abstract; see README): for the first ``stage1_steps`` the
lexicon branch is trained to *activate* the caption's concept dimensions (:func:`~unify.losses.activation_loss`);
afterwards cross-modal lexicon contrast and the FLOPS penalty *suppress* irrelevant dimensions, the activation
term kept at ``activation_weight_stage2``. Checkpoints are atomic and a rerun resumes from the last one with the
same random stream, so an interrupted run ends where the uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import load_checkpoint, save_checkpoint
from unify.data import FrameFolderDataset, VideoTextSet
from unify.losses import activation_loss, contrastive_loss, flops_loss, self_distillation_loss
from unify.model import UnifyModel
from unify.retrieval import latent_similarity, lexicon_similarity
from unify.text import CaptionTokenizer

log = logging.getLogger(__name__)

Variant = Literal["latent", "lexicon", "unify"]
VARIANTS: tuple[str, ...] = ("latent", "lexicon", "unify")


@dataclasses.dataclass
class TrainConfig:
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    stage1_steps: int = 150
    activation_weight: float = 1.0
    activation_weight_stage2: float = 0.2
    lexicon_contrast_weight: float = 1.0
    flops_weight: float = 1e-3
    distill_weight: float = 1.0
    distill_direction: str = "mutual"
    distill_tau: float = 1.0
    backbone_lr_scale: float = 1.0
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.steps > 0, "train.steps", self.steps, "a positive int")
        require(
            self.batch_size >= 2, "train.batch_size", self.batch_size, ">= 2 (contrastive needs negatives)"
        )
        require(self.lr > 0, "train.lr", self.lr, "a positive float")
        require(
            0 <= self.stage1_steps <= self.steps, "train.stage1_steps", self.stage1_steps, "in [0, steps]"
        )
        require(self.flops_weight >= 0, "train.flops_weight", self.flops_weight, ">= 0")
        require(
            self.distill_direction in ("lat2lex", "lex2lat", "mutual"),
            "train.distill_direction",
            self.distill_direction,
            "'lat2lex', 'lex2lat' or 'mutual'",
        )
        require(self.distill_tau > 0, "train.distill_tau", self.distill_tau, "a positive float")
        require(
            0 < self.backbone_lr_scale <= 1, "train.backbone_lr_scale", self.backbone_lr_scale, "in (0, 1]"
        )


def parameter_groups(model: UnifyModel, cfg: TrainConfig) -> list[dict]:
    """New parameters (lexicon heads, temporal embedding, logit scales) at ``lr``; the CLIP backbone (stem and
    both tops) at ``lr * backbone_lr_scale`` (CLIP4Clip fine-tunes CLIP with a 1e-3 coefficient)."""
    new = {id(p) for m in (model.v_lexicon_head, model.t_lexicon_head) for p in m.parameters()}
    new |= {id(model.temporal_embedding), id(model.latent_logit_scale), id(model.lexicon_logit_scale)}
    fresh = [p for p in model.parameters() if id(p) in new]
    backbone = [p for p in model.parameters() if id(p) not in new]
    return [{"params": fresh, "lr": cfg.lr}, {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale}]


def concept_targets(concepts: list[list[str]], tokenizer: CaptionTokenizer) -> torch.Tensor:
    """Multi-hot (N, V) of each caption's content words (the stage-1 activation targets)."""
    targets = torch.zeros(len(concepts), tokenizer.vocab_size)
    for i, words in enumerate(concepts):
        targets[i, tokenizer.word_ids(words)] = 1.0
    return targets


def unify_loss(
    model: UnifyModel,
    frames: torch.Tensor,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    variant: str,
    step: int,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch (frames float in [0, 1]) for ``variant`` at ``step``, and its parts (for logging)."""
    v_lat, v_lex = model.encode_video(frames)
    t_lat, t_lex = model.encode_text(ids, lengths)
    parts: dict[str, torch.Tensor] = {}
    lat_logits = model.latent_logit_scale.exp().clamp(max=100) * latent_similarity(t_lat, v_lat)
    lex_logits = model.lexicon_logit_scale.exp().clamp(max=100) * lexicon_similarity(t_lex, v_lex)
    if variant in ("latent", "unify"):
        parts["nce_latent"] = contrastive_loss(lat_logits)
    if variant in ("lexicon", "unify"):
        stage1 = step < cfg.stage1_steps
        act = activation_loss(t_lex, targets, model.concept_mask) + activation_loss(
            v_lex, targets, model.concept_mask
        )
        parts["activation"] = (cfg.activation_weight if stage1 else cfg.activation_weight_stage2) * act
        if not stage1:
            parts["nce_lexicon"] = cfg.lexicon_contrast_weight * contrastive_loss(lex_logits)
            parts["flops"] = cfg.flops_weight * (flops_loss(t_lex) + flops_loss(v_lex))
            if variant == "unify" and cfg.distill_weight > 0:
                sd = torch.zeros(())
                if cfg.distill_direction in ("lat2lex", "mutual"):
                    sd = sd + self_distillation_loss(lex_logits, lat_logits, cfg.distill_tau)
                if cfg.distill_direction in ("lex2lat", "mutual"):
                    sd = sd + self_distillation_loss(lat_logits, lex_logits, cfg.distill_tau)
                parts["distill"] = cfg.distill_weight * sd
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def train(
    model: UnifyModel,
    data: VideoTextSet | FrameFolderDataset,
    tokenizer: CaptionTokenizer,
    variant: str,
    cfg: TrainConfig,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` in place; returns the per-step loss log. Resumes from ``checkpoint`` when it exists."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: expected one of {VARIANTS}")
    torch.manual_seed(cfg.seed)
    groups = parameter_groups(model, cfg)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in groups], total_steps=cfg.steps, pct_start=0.1
    )
    history: list[dict[str, float]] = []
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=schedule)
        start, history = state["step"], state["extra"]["history"]
        log.info("resumed %s from %s at step %d", variant, ckpt, start)
    model.train()
    bar = tqdm(
        range(start, cfg.steps),
        desc=f"unify[{variant}]",
        disable=not progress,
        initial=start,
        total=cfg.steps,
    )
    for step in bar:
        frames, captions, concepts = data.batch(torch.randint(len(data), (cfg.batch_size,)))
        ids, lengths = tokenizer.encode(captions)
        targets = concept_targets(concepts, tokenizer)
        loss, parts = unify_loss(model, frames, ids, lengths, targets, variant, step, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history.append({"step": step, "loss": float(loss.detach()), **parts})
        if step % 20 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        done = step + 1
        if ckpt is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_checkpoint(
                ckpt,
                model=model,
                optimizer=optimizer,
                scheduler=schedule,
                step=done,
                extra={"history": history, "variant": variant},
            )
    model.eval()
    return history
