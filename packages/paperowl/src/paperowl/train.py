"""Instruction tuning loop: AdamW, linear warm-up then cosine decay to ``min_lr``, gradient clipping, loss on
answers only. Hyper-parameters of the paper's run (official ``scripts/train_it.sh``): lr 1e-4 -> 1e-6, 36 warm-up
iterations, weight decay 1e-4, betas (0.9, 0.999), clip 1.0, global batch 256, 10 epochs, bf16.

Batches: ``batch_size`` is the *global* batch (samples per optimizer step, all processes together; 256 in the
paper), ``micro_batch_size`` the samples one process runs through the model at once (4 in the paper); each process
accumulates ``batch_size / (micro_batch_size x processes)`` micro-batches (official ``train_it.sh``: micro-batch 4,
global 256, ``--gradient-checkpointing``, ``--bf16``). The loss of a step is the mean over *all* answer tokens of the
global batch (each micro-batch's summed token loss divided by the step's token count, all-reduced over processes),
so that accumulating gives the update of one big batch. ``precision: bf16-mixed`` runs the forward under bf16
autocast (fp32 trainable weights).

Data stream: a :class:`torch.utils.data.DataLoader` (``num_workers``) over :class:`EncodedSamples`, which encodes a
sample (its image views included) only when it is drawn; the order is a function of ``(seed, step)`` (an epoch-wise
permutation), so a resumed run draws what the uninterrupted one would. Runs through :class:`accelerate.Accelerator`
(``accelerate launch`` gives DDP; each process takes its share of every global batch).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
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
    batch_size: int = 16  # global: samples per optimizer step over all processes
    micro_batch_size: int | None = (
        None  # per process and forward; None: batch_size / processes (no accumulation)
    )
    precision: str = "fp32"  # or bf16-mixed: bf16 autocast, fp32 trainable weights
    num_workers: int = 0  # DataLoader workers decoding images and building views
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
        require(
            self.micro_batch_size is None or 0 < self.micro_batch_size <= self.batch_size,
            "micro_batch_size",
            self.micro_batch_size,
            f"null or an integer in [1, batch_size={self.batch_size}]",
        )
        require(self.precision in ("fp32", "bf16-mixed"), "precision", self.precision, "fp32 or bf16-mixed")
        require(self.num_workers >= 0, "num_workers", self.num_workers, "an integer >= 0")
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


def encode_one(model: PaperOwlModel, sample: Sample, with_answer: bool = True) -> dict:
    """One sample encoded; its answer is cut to fit ``max_length``, and a prompt that alone leaves fewer than
    8 positions (long table LaTeX, many crops) is cut from its start (keeping its images when it can)."""
    c = model.config
    e = encode(sample, model.tokenizer, c.image_size, c.anchors, model.tokens_per_view, with_answer)
    if len(e["input_ids"]) > c.max_length:
        e = _fit(e, c.max_length, model.image_token_id, sample.id)
    return e


def encode_all(model: PaperOwlModel, samples: Sequence[Sample], with_answer: bool = True) -> list[dict]:
    """Every sample encoded at once (small sets and tests; training streams through :class:`EncodedSamples`)."""
    return [encode_one(model, s, with_answer) for s in samples]


class EncodedSamples(torch.utils.data.Dataset):
    """``samples[i]`` encoded when it is drawn (a :class:`paperowl.data.JsonlSamples` decodes its images then):
    nothing of a sample is kept after its batch."""

    def __init__(self, model: PaperOwlModel, samples: Sequence[Sample], with_answer: bool = True) -> None:
        self.model, self.samples, self.with_answer = model, samples, with_answer

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return encode_one(self.model, self.samples[index], self.with_answer)


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


def micro_batches_per_step(config: TrainConfig, world: int) -> tuple[int, int]:
    """``(micro_batch_size, accumulation steps)`` of one process; ``batch_size`` must split evenly."""
    micro = config.micro_batch_size or config.batch_size // world
    if micro < 1 or config.batch_size % (micro * world):
        raise ConfigError(
            f"train.batch_size={config.batch_size}: the global batch must be a multiple of micro_batch_size x "
            f"processes = {config.micro_batch_size or micro} x {world}"
        )
    return micro, config.batch_size // (micro * world)


def step_indices(step: int, config: TrainConfig, n: int) -> list[int]:
    """The global batch of ``step``: positions ``step * batch_size ...`` of a stream of epoch-wise permutations of
    ``range(n)`` (``random.Random(seed + epoch)``): a pure function of the step, so resuming needs no sampler state."""
    out, cache = [], {}
    for position in range(step * config.batch_size, (step + 1) * config.batch_size):
        epoch, k = divmod(position, n)
        if epoch not in cache:
            order = list(range(n))
            random.Random(config.seed + epoch).shuffle(order)
            cache[epoch] = order
        out.append(cache[epoch][k])
    return out


class _Plan(torch.utils.data.Sampler):
    """This process's micro-batches of steps ``start..end``, in order (the DataLoader's batch sampler)."""

    def __init__(self, config: TrainConfig, n: int, start: int, end: int, rank: int, world: int) -> None:
        self.config, self.n, self.start, self.end, self.rank, self.world = config, n, start, end, rank, world
        self.micro, self.accumulation = micro_batches_per_step(config, world)

    def __len__(self) -> int:
        return (self.end - self.start) * self.accumulation

    def __iter__(self):
        for step in range(self.start, self.end):
            mine = step_indices(step, self.config, self.n)[self.rank :: self.world]
            for i in range(0, len(mine), self.micro):
                yield mine[i : i + self.micro]


def answer_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens the causal LM is scored on (labels shifted by one, -100 ignored)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def accumulate(
    model: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    total_tokens: int,
    world: int = 1,
    precision: str = "fp32",
    accelerator=None,
) -> float:
    """Backward of one optimizer step's micro-batches: each contributes its summed token loss over
    ``total_tokens`` (the global batch's answer tokens), times ``world`` as DDP averages the processes'
    gradients. Gradients are synchronised on the last micro-batch only. Returns this process's share of the
    step's mean token loss (summed over processes: the step's loss)."""
    import contextlib

    device = next(model.parameters()).device
    loss_sum = 0.0
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        sync = contextlib.nullcontext() if (last or accelerator is None) else accelerator.no_sync(model)
        with sync:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                out = model(**batch)
            tokens = answer_tokens(batch)
            loss = out.loss.float() * tokens / max(total_tokens, 1)
            if accelerator is not None:
                accelerator.backward(loss * world)
            else:
                (loss * world).backward()
            loss_sum += float(loss.detach())
    return loss_sum


def train(
    model: PaperOwlModel,
    samples: Sequence[Sample],
    config: TrainConfig,
    progress: bool = True,
    data_key: str | None = None,
) -> list[float]:
    """Train the trainable parameters (abstractor, LoRA, crop positions, optional LM modules/vision) and
    return the loss of every step (the mean token loss of the global batch).

    With ``checkpoint_path``, training resumes from that file when it exists and saves to it (atomically: the
    trainable parameters, optimizer, step and every RNG state) every ``checkpoint_every`` steps and when it stops;
    ``stop_after`` ends this run after that many steps in total (a time-limited job), and the next call continues
    exactly where it stopped. The checkpoint carries the run's key (:func:`run_key`; ``data_key`` names the data,
    default :func:`samples_key`): a checkpoint of other settings or data is refused
    (:class:`~paperlab.config.ConfigError` naming ``train.checkpoint_path``), never resumed from.
    """
    from accelerate import Accelerator

    from paperlab.io import load_checkpoint, save_checkpoint

    if not len(samples):
        raise ValueError("train: no samples")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    world = accelerator.num_processes
    _, accumulation = micro_batches_per_step(config, world)
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay)
    unwrapped = model
    model, optimizer = accelerator.prepare(model, optimizer)
    pad_id = unwrapped.tokenizer.pad_token_id
    trainable = _Trainable(unwrapped)
    losses: list[float] = []
    start = 0
    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    key = run_key(unwrapped, config, data_key or samples_key(samples)) if ckpt else ""
    if ckpt is not None and ckpt.is_file():
        stored = torch.load(ckpt, map_location="cpu", weights_only=False).get("extra", {}).get("key")
        if stored != key:
            raise ConfigError(
                f"train.checkpoint_path={str(ckpt)!r}: a checkpoint of other settings or data (key {stored}, "
                f"this run {key}); delete it or point train.checkpoint_path elsewhere to start over"
            )
        state = load_checkpoint(ckpt, model=trainable, optimizer=optimizer)
        start, losses = state["step"], list(state["extra"]["losses"])
        log.info("resumed from %s at step %d", ckpt, start)

    def save(step: int) -> None:
        if ckpt is not None and accelerator.is_main_process:
            extra = {"losses": losses, "key": key}
            save_checkpoint(ckpt, model=trainable, optimizer=optimizer, step=step, extra=extra)

    end = min(config.steps, config.stop_after) if config.stop_after else config.steps
    plan = _Plan(config, len(samples), start, end, accelerator.process_index, world)
    loader = torch.utils.data.DataLoader(
        EncodedSamples(unwrapped, samples),
        batch_sampler=plan,
        num_workers=config.num_workers,
        collate_fn=lambda encoded: collate(encoded, pad_id),
        # its own generator: creating the iterator then draws nothing from the global RNG (LoRA dropout's), so
        # a resumed run's dropout masks are the uninterrupted run's
        generator=torch.Generator().manual_seed(config.seed),
    )
    batches = iter(loader)
    model.train()
    bar = tqdm(range(start, end), desc="train", disable=not (progress and accelerator.is_main_process))
    for step in bar:
        micro_batches = [
            {k: v.to(accelerator.device) for k, v in next(batches).items()} for _ in range(accumulation)
        ]
        tokens = torch.tensor(sum(answer_tokens(b) for b in micro_batches), device=accelerator.device)
        total = int(accelerator.reduce(tokens, "sum")) if world > 1 else int(tokens)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        loss = accumulate(model, micro_batches, total, world, config.precision, accelerator)
        accelerator.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if world > 1:
            loss = float(accelerator.reduce(torch.tensor(loss, device=accelerator.device), "sum"))
        losses.append(loss)
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
    samples: Sequence[Sample],
    batch_size: int = 16,
    max_new_tokens: int = 32,
    progress: bool = False,
    num_workers: int = 0,
) -> list[str]:
    """Greedy answers for ``samples`` (their ``answer`` is ignored), streamed in batches."""
    model.eval()
    pad_id = model.tokenizer.pad_token_id
    loader = torch.utils.data.DataLoader(
        EncodedSamples(model, samples, with_answer=False),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=lambda encoded: collate(encoded, pad_id, left_pad=True),
    )
    out: list[str] = []
    for batch in tqdm(loader, desc="generate", disable=not progress):
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
