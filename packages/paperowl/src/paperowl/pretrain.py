"""Contrastive pre-training of the tiny vision tower: the tiny-scale stand-in for PaperOwl's pretrained CLIP ViT.

PaperOwl (arXiv 2311.18248, Sec. 4, via mPLUG-Owl / DocOwl) puts a *pretrained, frozen* CLIP ViT-L/14 under the
visual abstractor; only the abstractor and the LM's LoRA learn from the instruction data. Offline there is no
pretrained tower, and a random one trained only through the captioning loss learns slowly: the caption's few
image-dependent words are diluted among its template words, and the signal must cross the abstractor and the LM.
So the tiny run reproduces the missing stage with CLIP's own objective (Radford et al. 2021, Sec. 2.3): a symmetric
InfoNCE loss between the tower's mean-pooled patch features and a bag-of-words text embedding of the caption, on
the training diagrams; afterwards the tower is frozen as in the paper. Pairs with identical captions count as
positives of each other (a synthetic caption language repeats captions).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from tqdm import tqdm

from paperowl.cropping import to_tensor
from paperowl.data import Sample

log = logging.getLogger(__name__)


def contrastive_pretrain(
    vision: torch.nn.Module,
    samples: list[Sample],
    image_size: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    dim: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``vision`` (a timm ViT: ``forward_features`` -> ``(B, 1 + patches, width)``) with the CLIP loss on
    the first image and the answer of every sample; returns the loss per step. Deterministic for a seed."""
    if not samples:
        raise ValueError("contrastive_pretrain: no samples")
    generator = torch.Generator().manual_seed(seed)
    words = sorted({w for s in samples for w in s.answer.split()})
    if not words:
        raise ValueError("contrastive_pretrain: every answer is empty")
    index = {w: i for i, w in enumerate(words)}
    images = torch.stack([to_tensor(s.images[0], image_size) for s in samples])
    ids = [torch.tensor([index[w] for w in s.answer.split()] or [0]) for s in samples]
    caption_of = {c: i for i, c in enumerate(sorted({s.answer for s in samples}))}
    caption_ids = torch.tensor([caption_of[s.answer] for s in samples])  # equal ids = positives of each other
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        text = torch.nn.EmbeddingBag(len(words), dim, mode="mean")
        proj = torch.nn.Linear(vision.embed_dim, dim)
    log_scale = torch.nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), CLIP's initial temperature
    params = [p for p in vision.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([*params, *text.parameters(), *proj.parameters(), log_scale], lr=lr)
    vision.train()
    losses = []
    for _ in tqdm(range(steps), desc="CLIP pre-training", disable=not progress):
        batch = torch.randint(0, len(samples), (min(batch_size, len(samples)),), generator=generator).tolist()
        image_emb = F.normalize(proj(vision.forward_features(images[batch])[:, 1:].mean(1)), dim=-1)
        lengths = torch.tensor([len(ids[i]) for i in batch])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        text_emb = F.normalize(text(torch.cat([ids[i] for i in batch]), offsets), dim=-1)
        logits = log_scale.clamp(max=4.6052).exp() * image_emb @ text_emb.T
        same = (caption_ids[batch][:, None] == caption_ids[batch][None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = (
            -(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.T.log_softmax(1)).sum(1).mean()
        )
        optimizer.zero_grad(set_to_none=True)
        (loss / 2).backward()
        optimizer.step()
        losses.append(float(loss.detach()) / 2)
    vision.eval()
    log.info("CLIP pre-training: %d steps, loss %.3f -> %.3f", steps, losses[0], losses[-1])
    return losses


def prepare_tiny_tower(model, samples: list[Sample], progress: bool = True) -> list[float]:
    """Pre-train a :class:`paperowl.model.PaperOwlModel`'s *tiny* tower (``vision_tower`` None) for
    ``vision_clip_steps`` steps, then freeze it unless ``train_vision``; a loaded tower is left alone. Returns the
    CLIP losses ([] when nothing was done)."""
    config = model.config
    if config.vision_tower is not None or config.vision_clip_steps == 0:
        return []
    model.vision.requires_grad_(True)
    losses = contrastive_pretrain(
        model.vision,
        samples,
        config.image_size,
        config.vision_clip_steps,
        seed=config.seed,
        progress=progress,
    )
    model.vision.requires_grad_(config.train_vision)
    return losses
