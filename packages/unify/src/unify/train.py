"""One training loop for the three variants compared in the paper's ablations.

- ``latent``: latent branch only, InfoNCE on S_latent (the CLIP4Clip-style baseline; same backbone size).
- ``lexicon``: lexicon branch only, with the two-stage grounding.
- ``unify``: both branches (structure sharing through the stem) + two-stage grounding + self-distillation.

Two-stage semantics grounding (our reading of the abstract; see README): for the first ``stage1_steps`` the
lexicon branch is trained to *activate* the caption's concept dimensions (:func:`~unify.losses.activation_loss`);
afterwards cross-modal lexicon contrast and the FLOPS penalty *suppress* irrelevant dimensions, the activation
term kept at ``activation_weight_stage2``. Checkpoints are atomic and a rerun resumes from the last one with the
same random stream, so an interrupted run ends where the uninterrupted one does.

Scale-out: on one process the loop runs on the best device (CUDA when present, bf16 autocast there unless the
precision is ``fp32``). Under ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE > 1``) each process joins the
process group, the model is wrapped in DistributedDataParallel, ``batch_size`` is the global batch (each of the W
ranks draws ``batch_size / W`` items, as CLIP4Clip's ``batch_size // n_gpu``), and the embeddings of all ranks are
gathered (with gradients) before the contrastive terms, so the negatives are the global batch as in CLIP4Clip.

Batches: step ``s`` on rank ``r`` draws its items with a generator seeded by ``(seed, r, s)`` (so a resumed run
and a DataLoader prefetching ahead draw the same items); real frame folders are decoded in a ``DataLoader`` with
``num_workers`` worker processes, never in the training loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import load_checkpoint, save_checkpoint
from unify.data import FrameFolderDataset, VideoTextSet, caption_concepts
from unify.losses import activation_loss, contrastive_loss, flops_loss, self_distillation_loss
from unify.model import UnifyModel
from unify.retrieval import latent_similarity, lexicon_similarity
from unify.text import CaptionTokenizer

log = logging.getLogger(__name__)

Variant = Literal["latent", "lexicon", "unify"]
VARIANTS: tuple[str, ...] = ("latent", "lexicon", "unify")


@dataclasses.dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    stage1_steps: int = 300
    activation_weight: float = 1.0
    activation_weight_stage2: float = 1.0
    lexicon_contrast_weight: float = 1.0
    flops_weight: float = 1e-3
    distill_weight: float = 1.0
    distill_direction: str = "mutual"
    distill_tau: float = 1.0
    backbone_lr_scale: float = 1.0
    checkpoint_every: int = 250
    num_workers: int = 2  # DataLoader workers decoding real frames (0: in the main process)
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
        require(
            self.checkpoint_every >= 0,
            "train.checkpoint_every",
            self.checkpoint_every,
            ">= 0 (0: at the end)",
        )
        require(self.num_workers >= 0, "train.num_workers", self.num_workers, ">= 0")


def parameter_groups(model: UnifyModel, cfg: TrainConfig) -> list[dict]:
    """New parameters (lexicon heads, temporal parts, logit scales) at ``lr``; the CLIP backbone (stem and both
    tops) at ``lr * backbone_lr_scale`` (CLIP4Clip fine-tunes CLIP with a 1e-3 coefficient)."""
    new = {id(p) for p in model.new_parameters()}
    fresh = [p for p in model.parameters() if id(p) in new]
    backbone = [p for p in model.parameters() if id(p) not in new]
    return [{"params": fresh, "lr": cfg.lr}, {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale}]


def step_indices(n: int, batch_size: int, seed: int, rank: int, step: int) -> torch.Tensor:
    """The ``batch_size`` items (of ``n``) rank ``rank`` trains on at ``step``: a function of its arguments only."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + rank) * 1_000_003 + step)
    return torch.randint(n, (batch_size,), generator=g)


class StepBatches(torch.utils.data.Sampler):
    """Batch sampler of steps ``start .. steps - 1`` (:func:`step_indices`) for a ``DataLoader``."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, start: int, steps: int) -> None:
        self.n, self.batch_size, self.seed, self.rank, self.start, self.steps = (
            n,
            batch_size,
            seed,
            rank,
            start,
            steps,
        )

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield step_indices(self.n, self.batch_size, self.seed, self.rank, step).tolist()


def batches(
    data: VideoTextSet | FrameFolderDataset, batch_size: int, cfg: TrainConfig, rank: int, start: int
):
    """``(frames, captions, concepts)`` of every step from ``start``: frame folders are decoded by a ``DataLoader``
    with ``cfg.num_workers`` workers; in-memory synthetic videos (anything else with ``batch``) are indexed
    directly."""
    if not isinstance(data, FrameFolderDataset):
        for step in range(start, cfg.steps):
            yield data.batch(step_indices(len(data), batch_size, cfg.seed, rank, step))
        return
    sampler = StepBatches(len(data), batch_size, cfg.seed, rank, start, cfg.steps)
    yield from video_loader(data, sampler, cfg.num_workers)


def video_loader(
    data: FrameFolderDataset, batch_sampler: Any, num_workers: int
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` decoding ``data`` in ``num_workers`` processes; batches are ``(frames (B, F, 3, S, S),
    captions, concept words)``."""
    return torch.utils.data.DataLoader(
        data,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_videos,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )


def collate_videos(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str], list[list[str]]]:
    captions = [c for _, c in items]
    return torch.stack([f for f, _ in items]), captions, [caption_concepts(c) for c in captions]


def replica_digest(model: torch.nn.Module) -> str:
    """:func:`paperlab.scale.weights_digest` of ``model``, checked equal on every rank (RuntimeError naming the
    ranks that differ from rank 0 otherwise)."""
    from paperlab.scale import weights_digest

    digest = weights_digest(model)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        digests: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(digests, digest)
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"ranks {differ} hold other weights than rank 0 after training ({digests})")
    return digest


def concept_targets(concepts: list[list[str]], tokenizer: CaptionTokenizer) -> torch.Tensor:
    """Multi-hot (N, V) of each caption's content words (the stage-1 activation targets)."""
    targets = torch.zeros(len(concepts), tokenizer.vocab_size)
    for i, words in enumerate(concepts):
        targets[i, tokenizer.word_ids(words)] = 1.0
    return targets


def setup_distributed() -> tuple[torch.device, int, int]:
    """``(device, rank, world_size)``; joins the process group when launched with ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local), rank, world
    return torch.device("cpu"), rank, world


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients of every rank and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) of every rank along dim 0 (same B on every rank), keeping gradients;
    identity on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def unify_loss(
    model: UnifyModel | torch.nn.Module,
    frames: torch.Tensor,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    variant: str,
    step: int,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one batch (frames float in [0, 1]) for ``variant`` at ``step``, and its parts (detached
    tensors, for logging). ``model`` may be wrapped in DistributedDataParallel; embeddings are gathered over
    ranks."""
    core: UnifyModel = getattr(model, "module", model)
    *encoded, scales = model(frames, ids, lengths, with_logit_scales=True)
    v_lat, v_lex, t_lat, t_lex = (gather_across_ranks(x) for x in encoded)
    targets = gather_across_ranks(targets)
    parts: dict[str, torch.Tensor] = {}
    lat_logits = scales[0] * latent_similarity(t_lat, v_lat)
    lex_logits = scales[1] * lexicon_similarity(t_lex, v_lex)
    if variant in ("latent", "unify"):
        parts["nce_latent"] = contrastive_loss(lat_logits)
    if variant in ("lexicon", "unify"):
        stage1 = step < cfg.stage1_steps
        act = activation_loss(t_lex, targets, core.concept_mask) + activation_loss(
            v_lex, targets, core.concept_mask
        )
        parts["activation"] = (cfg.activation_weight if stage1 else cfg.activation_weight_stage2) * act
        if not stage1:
            parts["nce_lexicon"] = cfg.lexicon_contrast_weight * contrastive_loss(lex_logits)
            parts["flops"] = cfg.flops_weight * (flops_loss(t_lex) + flops_loss(v_lex))
            if variant == "unify" and cfg.distill_weight > 0:
                sd = torch.zeros((), device=lat_logits.device)
                if cfg.distill_direction in ("lat2lex", "mutual"):
                    sd = sd + self_distillation_loss(lex_logits, lat_logits, cfg.distill_tau)
                if cfg.distill_direction in ("lex2lat", "mutual"):
                    sd = sd + self_distillation_loss(lat_logits, lex_logits, cfg.distill_tau)
                parts["distill"] = cfg.distill_weight * sd
    total = sum(parts.values())
    return total, {k: v.detach() for k, v in parts.items()}


def train(
    model: UnifyModel,
    data: VideoTextSet | FrameFolderDataset,
    tokenizer: CaptionTokenizer,
    variant: str,
    cfg: TrainConfig,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    precision: str = "bf16-mixed",
) -> list[dict[str, float]]:
    """Train ``model`` in place; returns the per-step loss log. Resumes from ``checkpoint`` when it exists.
    ``precision``: ``fp32`` or ``bf16-mixed`` (fp32 weights, bf16 autocast on CUDA)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: expected one of {VARIANTS}")
    device, rank, world = setup_distributed()
    if cfg.batch_size % world:
        raise ValueError(f"train.batch_size={cfg.batch_size} (global) must be divisible by the {world} ranks")
    per_rank = cfg.batch_size // world
    model.to(device)
    torch.manual_seed(cfg.seed + rank)  # every rank draws its own batches
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
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and precision != "fp32"
        else contextlib.nullcontext()
    )
    model.train()
    bar = tqdm(
        range(start, cfg.steps),
        desc=f"unify[{variant}]",
        disable=not progress or rank != 0,
        initial=start,
        total=cfg.steps,
    )
    for step, (frames, captions, concepts) in zip(bar, batches(data, per_rank, cfg, rank, start)):
        ids, lengths = tokenizer.encode(captions)
        targets = concept_targets(concepts, tokenizer).to(device)
        with autocast:
            loss, parts = unify_loss(
                net, frames.to(device), ids.to(device), lengths.to(device), targets, variant, step, cfg
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history.append(
            {"step": step, "loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}
        )
        if step % 20 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        done = step + 1
        every = cfg.checkpoint_every
        if rank == 0 and ckpt is not None and (done == cfg.steps or (every and done % every == 0)):
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
