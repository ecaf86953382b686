"""Instruction tuning loop: AdamW, linear warm-up then cosine decay to ``min_lr``, gradient clipping, loss on
answers only. Hyper-parameters of the paper's run (official ``scripts/train_it.sh``): lr 1e-4 -> 1e-6, 36 warm-up
iterations, weight decay 1e-4, betas (0.9, 0.999), clip 1.0, global batch 256, 10 epochs, bf16.

Runs through :class:`accelerate.Accelerator`, so ``accelerate launch``/``torchrun`` give data-parallel training
without code change (each process takes every ``world_size``-th batch).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from paperlab.config import ConfigError, require
from paperowl.data import Sample, collate, encode
from paperowl.model import PaperOwlModel

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-4
    min_lr: float = 1e-6
    warmup_steps: int = 36
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_path: str | None = None
    checkpoint_every: int = 0
    stop_after: int | None = None

    def __post_init__(self) -> None:
        require(self.steps > 0, "steps", self.steps, "a positive integer")
        require(self.batch_size > 0, "batch_size", self.batch_size, "a positive integer")
        require(self.lr > 0, "lr", self.lr, "a positive float")
        require(0 <= self.min_lr <= self.lr, "min_lr", self.min_lr, f"a float in [0, lr={self.lr}]")
        require(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "an integer >= 0")
        require(self.grad_clip > 0, "grad_clip", self.grad_clip, "a positive float")
        require(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, "an integer >= 0")
        require(self.stop_after is None or self.stop_after > 0, "stop_after", self.stop_after, "null or > 0")
        require(
            self.checkpoint_path is not None or (self.checkpoint_every == 0 and self.stop_after is None),
            "checkpoint_path",
            self.checkpoint_path,
            "a file path when checkpoint_every or stop_after is set",
        )


class _Trainable:
    """The trainable parameters of a model as a ``state_dict`` (a checkpoint never stores frozen base weights)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.params.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.params) - set(state)
        if missing:
            raise KeyError(f"checkpoint lacks trainable parameters {sorted(missing)[:3]}...")
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(state[n])


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps`` then cosine from ``lr`` to ``min_lr`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def encode_all(model: PaperOwlModel, samples: list[Sample], with_answer: bool = True) -> list[dict]:
    """Encode every sample; answers are cut to fit ``max_length``, and a prompt that alone leaves fewer than
    8 positions (long table LaTeX, many crops) is cut from its start (keeping its images when it can)."""
    c = model.config
    out = []
    for sample in samples:
        e = encode(sample, model.tokenizer, c.image_size, c.anchors, c.num_queries, with_answer)
        excess = len(e["input_ids"]) - c.max_length
        if excess > 0:
            e = _fit(e, c.max_length, model.image_token_id, sample.id)
        out.append(e)
    return out


def _fit(e: dict, max_length: int, image_id: int, sample_id: str) -> dict:
    prompt_len = next((i for i, t in enumerate(e["labels"]) if t != -100), len(e["labels"]))
    keep_answer = max(8, max_length - prompt_len) if prompt_len < len(e["labels"]) else 0
    ids, labels = e["input_ids"][: prompt_len + keep_answer], e["labels"][: prompt_len + keep_answer]
    drop = len(ids) - max_length
    if drop > 0:
        text_positions = [i for i, t in enumerate(ids[:prompt_len]) if t != image_id][:drop]
        if len(text_positions) < drop:
            raise ValueError(
                f"sample {sample_id!r}: its images alone need more than max_length={max_length} tokens"
            )
        removed = set(text_positions)
        ids = [t for i, t in enumerate(ids) if i not in removed]
        labels = [t for i, t in enumerate(labels) if i not in removed]
        log.warning("sample %r: prompt cut by %d tokens to fit max_length=%d", sample_id, drop, max_length)
    return {**e, "input_ids": ids, "labels": labels}


#: TrainConfig fields that do not change the trained weights (where and how often to save, when to pause)
RESUME_ONLY = ("checkpoint_path", "checkpoint_every", "stop_after")


def samples_key(samples: list[Sample]) -> str:
    """A key of the samples' content: ids, prompts, answers, task types and image pixels."""
    import hashlib

    from paperlab.io import derived_key

    rows = [
        [
            s.id,
            s.prompt,
            s.answer,
            s.task_type,
            [hashlib.sha256(im.tobytes()).hexdigest()[:16] for im in s.images],
        ]
        for s in samples
    ]
    return derived_key(rows)


def run_key(model: PaperOwlModel, config: TrainConfig, data_key: str) -> str:
    """What a training run's checkpoint is derived from (:func:`paperlab.io.derived_key`): every setting that
    changes the weights (train settings but :data:`RESUME_ONLY`, the model config) and the data's key."""
    from dataclasses import asdict

    from paperlab.io import derived_key

    train_settings = {k: v for k, v in asdict(config).items() if k not in RESUME_ONLY}
    return derived_key({"train": train_settings, "model": asdict(model.config), "data": data_key})


def train(
    model: PaperOwlModel,
    samples: list[Sample],
    config: TrainConfig,
    progress: bool = True,
    data_key: str | None = None,
) -> list[float]:
    """Train the trainable parameters (abstractor, LoRA, crop positions, optional LM modules/vision) and
    return the loss of every step.

    With ``checkpoint_path``, training resumes from that file when it exists and saves to it (atomically: the
    trainable parameters, optimizer, step, sampler and every RNG state) every ``checkpoint_every`` steps and when
    it stops; ``stop_after`` ends this run after that many steps in total (a time-limited job), and the next call
    continues exactly where it stopped. The checkpoint carries the run's key (:func:`run_key`; ``data_key``
    names the data, default :func:`samples_key`): a checkpoint of other settings or data is refused
    (:class:`~paperlab.config.ConfigError` naming ``train.checkpoint_path``), never resumed from.
    """
    from accelerate import Accelerator

    from paperlab.io import load_checkpoint, save_checkpoint

    if not samples:
        raise ValueError("train: no samples")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    encoded = encode_all(model, samples)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    pad_id = accelerator.unwrap_model(model).tokenizer.pad_token_id
    trainable = _Trainable(accelerator.unwrap_model(model))
    losses: list[float] = []
    order: list[int] = []
    start = 0
    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    key = run_key(accelerator.unwrap_model(model), config, data_key or samples_key(samples)) if ckpt else ""
    if ckpt is not None and ckpt.is_file():
        stored = torch.load(ckpt, map_location="cpu", weights_only=False).get("extra", {}).get("key")
        if stored != key:
            raise ConfigError(
                f"train.checkpoint_path={str(ckpt)!r}: a checkpoint of other settings or data (key {stored}, "
                f"this run {key}); delete it or point train.checkpoint_path elsewhere to start over"
            )
        state = load_checkpoint(ckpt, model=trainable, optimizer=optimizer)
        start, losses, order = state["step"], list(state["extra"]["losses"]), list(state["extra"]["order"])
        rng.setstate(state["extra"]["sampler"])
        log.info("resumed from %s at step %d", ckpt, start)

    def save(step: int) -> None:
        if ckpt is not None and accelerator.is_main_process:
            extra = {"losses": losses, "order": order, "sampler": rng.getstate(), "key": key}
            save_checkpoint(ckpt, model=trainable, optimizer=optimizer, step=step, extra=extra)

    end = min(config.steps, config.stop_after) if config.stop_after else config.steps
    model.train()
    bar = tqdm(range(start, end), desc="train", disable=not (progress and accelerator.is_main_process))
    for step in bar:
        batch_idx = []
        for _ in range(config.batch_size * accelerator.num_processes):
            if not order:
                order = list(range(len(encoded)))
                rng.shuffle(order)
            batch_idx.append(order.pop())
        mine = batch_idx[accelerator.process_index :: accelerator.num_processes]
        batch = {k: v.to(accelerator.device) for k, v in collate([encoded[i] for i in mine], pad_id).items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            save(step + 1)
    if end > start:
        save(end)
    model.eval()
    return losses


@torch.no_grad()
def generate(
    model: PaperOwlModel,
    samples: list[Sample],
    batch_size: int = 16,
    max_new_tokens: int = 32,
    progress: bool = False,
) -> list[str]:
    """Greedy answers for ``samples`` (their ``answer`` is ignored)."""
    model.eval()
    encoded = encode_all(model, samples, with_answer=False)
    out: list[str] = []
    for start in tqdm(range(0, len(encoded), batch_size), desc="generate", disable=not progress):
        batch = collate(encoded[start : start + batch_size], model.tokenizer.pad_token_id, left_pad=True)
        out.extend(
            model.generate(
                batch["input_ids"],
                batch["attention_mask"],
                batch["pixel_values"],
                batch["view_positions"],
                max_new_tokens=max_new_tokens,
            )
        )
    return out
