"""The training loop (:func:`fit`, shared by pretraining and :mod:`semmim.finetune`): AdamW with linear warm-up and
cosine decay, an EMA update after every step, atomic checkpoints that resume exactly (model + momentum + centres +
queues, optimizer, scheduler, RNG), and DDP when launched with ``torchrun`` / ``accelerate launch``
(``WORLD_SIZE > 1``); :func:`pretrain` feeds it caption batches."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from paperlab.config import require
from paperlab.io import load_checkpoint, save_checkpoint
from semmim.data import CaptionFile, CaptionSet, caption_loader
from semmim.views import local_views, second_view
from semmim.vlp import SemMIMModel

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig:
    steps: int = 600
    batch: int = 32
    lr: float = 1.0e-3
    weight_decay: float = 0.02  # ALBEF
    warmup: int = 30
    grad_clip: float = 1.0
    checkpoint_every: int = 0  # 0 = no checkpoints; > 0 = save every N steps and resume from the last one
    log_every: int = 10
    workers: int = 2  # DataLoader processes decoding a caption file's images (corpus.kind=files)

    def __post_init__(self) -> None:
        require(self.steps > 0, "train.steps", self.steps, "> 0")
        require(self.batch >= 2, "train.batch", self.batch, ">= 2 (ITC and ITM need in-batch negatives)")
        require(self.lr > 0, "train.lr", self.lr, "> 0")
        require(
            0 <= self.warmup < self.steps, "train.warmup", self.warmup, f"in [0, train.steps={self.steps})"
        )
        require(self.checkpoint_every >= 0, "train.checkpoint_every", self.checkpoint_every, ">= 0")
        require(self.workers >= 0, "train.workers", self.workers, ">= 0 (0: decode in the training process)")
        require(self.log_every >= 1, "train.log_every", self.log_every, ">= 1")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then cosine decay to 0 at ``cfg.steps``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return world, rank


def is_main_process() -> bool:
    """True outside DDP and on rank 0 (the process that writes files), also before the process group starts
    (``RANK`` of the launch: :func:`paperlab.scale.is_main_process`)."""
    from paperlab.scale import is_main_process as main

    return main()


def fit(
    model: torch.nn.Module,
    cfg: TrainConfig,
    inputs: Callable[[], tuple],
    *,
    after_step: Callable[[], None] | None = None,
    param_groups: list[dict] | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    description: str = "train",
    device: torch.device | str = "cpu",
    stop_at: int | None = None,
    precision: str = "fp32",
) -> list[dict[str, float]]:
    """The generic loop shared by pretraining and fine-tuning: ``model(*inputs())`` returns a dict of losses with
    ``loss`` the one to minimise; AdamW (weight decay on matrices only, or ``param_groups``), warm-up + cosine
    (:func:`lr_factor`), gradient clipping, ``after_step()`` after every optimizer step (the EMA update), logged
    means every ``cfg.log_every`` steps, atomic checkpoints on rank 0 that resume exactly in one process, and DDP
    when ``WORLD_SIZE > 1`` (each rank then draws its own batches: the global RNG is re-seeded per rank, also on
    resume, so a resumed DDP run continues with fresh per-rank streams rather than bit-exactly). ``precision``:
    ``fp32`` or ``bf16-mixed`` (fp32 master weights, the forward under bf16 autocast; ``paperlab.scale``)."""
    require(precision in ("fp32", "bf16-mixed"), "scale.precision", precision, "fp32 or bf16-mixed")
    world, rank = _distributed()
    model.to(device)
    net: torch.nn.Module = model
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        ids = [local] if torch.device(device).type == "cuda" else None
        # broadcast_buffers=False: DDP would otherwise copy rank 0's buffers (the ITC queues, the agreement
        # centres) over every rank's at each forward; they are kept identical by all_gather / all_reduce instead
        # (semmim.vlp.SemMIMModel._enqueue / _update_center)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=True, broadcast_buffers=False
        )
    if param_groups is None:
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
        param_groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    start, history, running = 0, [], {}
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler)
        start, history = state["step"], list(state["extra"].get("history", []))
        running = dict(state["extra"].get("running", {}))
        log.info("resumed %s from step %d", checkpoint, start)
    if world > 1:  # same seed on every rank would give every rank the same batches
        torch.manual_seed(int(torch.randint(2**31 - 1, ())) + rank)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(
        range(start, min(cfg.steps, stop_at or cfg.steps)),
        desc=description,
        disable=not progress or rank != 0,
        leave=False,
    )
    dev = torch.device(device)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    # the logged sums stay on the device (float64 where it exists: sums equal to the host's python floats) and
    # reach the host once per log interval -- no per-step synchronisation for logging
    acc_dtype = torch.float32 if dev.type == "mps" else torch.float64
    sums = {k: torch.tensor(v, dtype=acc_dtype, device=dev) for k, v in running.items()}
    for step in bar:
        with autocast:
            out = net(*inputs())
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step()
        for k, v in out.items():
            value = v.detach().to(acc_dtype)
            sums[k] = sums[k] + value if k in sums else value
        if (step + 1) % cfg.log_every == 0:
            names = list(sums)
            values = torch.stack([sums[k] for k in names]).tolist() if names else []  # the one sync
            history.append({"step": step + 1, **{k: v / cfg.log_every for k, v in zip(names, values)}})
            sums = {}
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        if (
            checkpoint is not None
            and cfg.checkpoint_every
            and (step + 1) % cfg.checkpoint_every == 0
            and rank == 0
        ):
            save_checkpoint(
                checkpoint,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                step=step + 1,
                extra={"history": history, "running": {k: v.item() for k, v in sums.items()}},
            )
    model.eval()
    return history


def pretrain(
    model: SemMIMModel,
    data: CaptionSet | CaptionFile,
    tokenizer,
    cfg: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    **options,
) -> list[dict[str, float]]:
    """Pretrain ``model`` on ``data`` for ``cfg.steps`` steps; returns the logged losses (one dict per
    ``cfg.log_every`` steps). Batches, augmentations and masks draw from the global torch RNG, so a run resumed from
    ``checkpoint`` continues exactly where the interrupted one stopped. ``options`` go to :func:`fit`:
    ``checkpoint``, ``progress``, ``description`` (default ``"pretrain"``) and ``stop_at``, which ends the loop
    after that step (an interruption, for tests), leaving the schedule of ``cfg.steps`` unchanged."""
    mim = model.loss_cfg.mim
    two_views = mim.enabled and mim.agreement  # the agreement loss needs a second view
    stream: list = []  # a caption file's DataLoader iterator, made at the first step (after a resume's RNG)

    def draw() -> tuple[torch.Tensor, list[str]]:
        if not isinstance(data, CaptionFile):  # in memory: batches from the global RNG (exact resume)
            return data.batch(torch.randint(len(data), (cfg.batch,)))
        if not stream:
            seed = int(torch.randint(2**31 - 1, ()))
            loader = caption_loader(data, cfg.batch, cfg.workers, samples=cfg.batch * cfg.steps, seed=seed)
            stream.append(iter(loader))
        return next(stream[0])

    def inputs() -> tuple:
        images, captions = draw()
        ids, attention = tokenizer(captions)
        images, ids, attention = images.to(device), ids.to(device), attention.to(device)
        view2 = second_view(images, mim) if two_views else None
        if two_views and mim.local_crops:  # multi-crop: DINO's local crops for the online model
            crops = local_views(images, mim.local_crops, mim.local_crop_size, tuple(mim.local_crop_scale))
            return images, ids, attention, view2, crops
        return images, ids, attention, view2

    options.setdefault("description", "pretrain")
    return fit(model, cfg, inputs, after_step=model.ema_update, device=device, **options)
