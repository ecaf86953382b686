"""ProFuser's training on ``transformers.Trainer``: ``ProFuserConfig(TrainingArguments)`` + ``ProFuserTrainer``.

The trainer is given the inference-mode items (the reward-chosen source response with that source's distributions
on it) and the training-mode items (the ground truth with the MinCE source's distributions), and draws from them by
the progressive schedule (:class:`profuser.schedule.ProgressiveSampler`); the loss is
:func:`profuser.losses.fusion_loss`. SFT (``lam=1``, training mode), FuseLLM (training mode) and the inference-only
ablation are the same trainer with another schedule. Being a ``Trainer``, it runs under ``accelerate launch`` /
``torchrun`` unchanged, checkpoints every ``save_steps`` and resumes with ``resume_from_checkpoint``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from paperlab.io import atomic_write_json
from profuser.losses import fusion_loss
from profuser.represent import SampleRep
from profuser.schedule import KINDS, ProgressiveSampler, ScheduleConfig


def to_item(rep: SampleRep) -> dict[str, Any]:
    """A training item, kept compact (int32 ids, float16 log-probs, response rows only) until
    :class:`FusionCollator` lays it out as ``input_ids``, ``labels`` and teacher rows aligned with them."""
    return {
        "input_ids": rep.target_ids.astype(np.int32),
        "n_prompt": rep.n_prompt,
        "topk_ids": rep.topk_ids.astype(np.int32),
        "topk_logp": rep.topk_logp.astype(np.float16),
    }


@dataclass
class FusionCollator:
    """Right-pads :func:`to_item` dicts into tensors: ``labels`` -100 on prompt and padding, ``teacher_ids`` -1 and
    ``teacher_logp`` 0 wherever there is no source row."""

    pad_token_id: int

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(it["input_ids"]) for it in items)
        k = items[0]["topk_ids"].shape[1]
        b = len(items)
        out = {
            "input_ids": torch.full((b, width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((b, width), dtype=torch.long),
            "labels": torch.full((b, width), -100, dtype=torch.long),
            "teacher_ids": torch.full((b, width, k), -1, dtype=torch.long),
            "teacher_logp": torch.zeros((b, width, k), dtype=torch.float32),
        }
        for i, it in enumerate(items):
            ids = torch.from_numpy(it["input_ids"].astype(np.int64))
            n, p = len(ids), it["n_prompt"]
            out["input_ids"][i, :n] = ids
            out["attention_mask"][i, :n] = 1
            out["labels"][i, p:n] = ids[p:]
            out["teacher_ids"][i, p:n] = torch.from_numpy(it["topk_ids"].astype(np.int64))
            out["teacher_logp"][i, p:n] = torch.from_numpy(it["topk_logp"].astype(np.float32))
        return out


@dataclass
class ProFuserConfig(TrainingArguments):
    """``TrainingArguments`` plus the fusion weight and the progressive schedule."""

    lam: float = field(default=0.9, metadata={"help": "weight of the CLM loss (FuseLLM lambda, Sec. 3.2)"})
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature of the stored top-k"})
    schedule_kind: str = field(default="linear", metadata={"help": f"one of {KINDS}"})
    switch: float = field(default=0.5, metadata={"help": "stages: share of samples in inference mode"})
    remove_unused_columns: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0 (the schedule is laid over it), got {self.max_steps}")
        ScheduleConfig(self.schedule_kind, self.switch)


#: written atomically into a Trainer checkpoint once all of it is on disk (a kill mid-save leaves none)
COMPLETE = "complete.json"


class MarkComplete(TrainerCallback):
    """After each checkpoint is saved, the main process writes :data:`COMPLETE` into it: a checkpoint without it
    was cut short and is not resumed from (:func:`last_checkpoint`)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            atomic_write_json(folder / COMPLETE, {"step": state.global_step})
        return control


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint of ``output_dir`` that was saved completely (``resume_from_checkpoint``), or None."""
    done = [p for p in Path(output_dir).glob("checkpoint-*") if (p / COMPLETE).is_file()]
    done = [p for p in done if p.name.split("-", 1)[1].isdigit()]
    return str(max(done, key=lambda p: int(p.name.split("-", 1)[1]))) if done else None


class ProFuserTrainer(Trainer):
    def __init__(
        self,
        model,
        args: ProFuserConfig,
        inference_items: Sequence[dict],
        training_items: Sequence[dict],
        pad_token_id: int,
        **kwargs: Any,
    ) -> None:
        self.n_inference = len(inference_items)
        self.n_training = len(training_items)
        super().__init__(
            model=model,
            args=args,
            train_dataset=list(inference_items) + list(training_items),
            data_collator=FusionCollator(pad_token_id),
            **kwargs,
        )
        self.add_callback(MarkComplete())
        self._parts: dict[str, list[float]] = {"clm": [], "fusion": [], "covered": []}

    def _get_train_sampler(self, train_dataset=None) -> ProgressiveSampler:
        total = (
            self.args.max_steps
            * self.args.per_device_train_batch_size
            * self.args.gradient_accumulation_steps
            * max(1, self.args.world_size)
        )
        return ProgressiveSampler(
            ScheduleConfig(self.args.schedule_kind, self.args.switch),
            self.n_inference,
            self.n_training,
            total,
            seed=self.args.seed,
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The fusion loss of the micro-batch. Under gradient accumulation transformers passes
        ``num_items_in_batch``, the response tokens of the whole accumulated batch (summed over ranks with
        ``average_tokens_across_devices``), and then does not divide the loss by the accumulation steps itself: the
        loss is the micro-batch's token sum over that count, times the ranks when it counts every rank's tokens (DDP
        and ZeRO average the gradients). The accumulated gradient is then the one of the whole batch's mean.
        Without it (a model whose forward takes no loss kwargs) the micro-batch mean, which Trainer divides."""
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        parts = fusion_loss(
            outputs.logits,
            inputs["labels"],
            inputs["teacher_ids"],
            inputs["teacher_logp"],
            self.args.lam,
            self.args.temperature,
        )
        for name in self._parts:
            self._parts[name].append(float(getattr(parts, name).detach()))
        loss = parts.total
        if num_items_in_batch is not None and model.training:
            share = parts.n_tokens / num_items_in_batch  # exactly 1.0 without accumulation on one rank
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                share = share * self.accelerator.num_processes
            loss = loss * share
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        for name, values in self._parts.items():
            if values:
                logs[f"loss_{name}"] = round(sum(values) / len(values), 4)
                values.clear()
        super().log(logs, *args, **kwargs)
