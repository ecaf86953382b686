"""GLPFT, the paper's two-stage fine-tuning (Sec. 3.3; official ``GLPFT/scripts/train_toolbench.sh``), on TRL's
``SFTTrainer``.

* Stage 1: the backbone LLM is fine-tuned on the whole tool-use task without splitting it into sub-tasks (the
  single-LLM data, :func:`alpha_umi.data.backbone_samples`), learning the general tool-learning ability.
* Stage 2: the stage-1 checkpoint is copied into the planner, the caller and the summarizer, and each copy is
  fine-tuned on its own sub-task data only.

Every SFT step sees ``system: <input>`` as the prompt and ``<target><eos>`` as the completion, with the loss on the
completion only (official ``train.py``). The single-LLM baseline is the backbone trained on the stage-1 data alone;
the "stage-2 only" ablation trains the three roles from the base model.

Each run writes ``<out>/<name>/model`` and a ``done.json`` (a finished run is reused), and Trainer checkpoints in
``<out>/<name>/trainer`` when ``save_strategy`` is set, from which an interrupted run resumes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alpha_umi.data import ROLES, training_text
from paperlab.config import require
from paperlab.io import atomic_write_json, read_json

log = logging.getLogger(__name__)


@dataclass
class StageConfig:
    """One fine-tuning run (the official script's flags)."""

    learning_rate: float = 1e-5
    epochs: float = 1.0
    warmup_ratio: float = 0.2
    weight_decay: float = 0.0
    scheduler: str = "cosine"

    def __post_init__(self) -> None:
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        require(self.epochs > 0, "epochs", self.epochs, "> 0")
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)")


@dataclass
class TrainConfig:
    max_length: int = 4096  # official model_max_length
    batch_size: int = 6  # per device (official BSZ 6 on 8 GPUs)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(5e-5, 2.0, 0.4, 0.0))
    planner: StageConfig = field(default_factory=lambda: StageConfig(1e-5, 1.0, 0.2, 0.01))
    caller: StageConfig = field(default_factory=lambda: StageConfig(1e-5, 1.0, 0.2, 0.01))
    summarizer: StageConfig = field(default_factory=lambda: StageConfig(1e-5, 2.0, 0.4, 0.01))
    baseline_epochs: float = 0.0  # single-LLM epochs; 0: stage1.epochs + max stage-2 epochs (equal passes)
    lora: dict[str, Any] = field(default_factory=dict)  # peft LoraConfig fields; {} = full fine-tuning
    seed: int = 0
    args: dict[str, Any] = field(
        default_factory=dict
    )  # any other SFTConfig field (bf16, use_cpu, save_steps, ...)

    def __post_init__(self) -> None:
        require(self.max_length >= 16, "train.max_length", self.max_length, ">= 16")
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        require(self.baseline_epochs >= 0, "train.baseline_epochs", self.baseline_epochs, ">= 0")

    def stage(self, role: str) -> StageConfig:
        return getattr(self, role)


def sft(
    start: str | Path,
    samples: list[dict[str, Any]],
    stage: StageConfig,
    cfg: TrainConfig,
    out: Path,
    *,
    name: str,
) -> Path:
    """Fine-tune the model at ``start`` on ``samples`` (role samples with ``input``/``target``); returns the saved
    model directory. A finished run (``done.json``) is not redone; an interrupted one resumes from its last Trainer
    checkpoint."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    run_dir = out / name
    model_dir = run_dir / "model"
    if (run_dir / "done.json").is_file():
        return model_dir
    tok = AutoTokenizer.from_pretrained(start)
    model = AutoModelForCausalLM.from_pretrained(start)
    rows = [training_text(s, tok.eos_token) for s in samples]
    args = {
        "output_dir": str(run_dir / "trainer"),
        "learning_rate": stage.learning_rate,
        "num_train_epochs": stage.epochs,
        "warmup_steps": stage.warmup_ratio,  # a float < 1 is a fraction of the steps (transformers 5)
        "weight_decay": stage.weight_decay,
        "lr_scheduler_type": stage.scheduler,
        "per_device_train_batch_size": cfg.batch_size,
        "max_length": cfg.max_length,
        "completion_only_loss": True,
        "seed": cfg.seed,
        "save_strategy": "no",
        "report_to": [],
        "logging_steps": 10,
        **cfg.args,
    }
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", **cfg.lora)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**args),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=peft_config,
    )
    resume = any((run_dir / "trainer").glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    final = trainer.model.merge_and_unload() if cfg.lora else trainer.model
    if trainer.accelerator.is_main_process:
        final.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        atomic_write_json(
            run_dir / "done.json",
            {
                "name": name,
                "start": str(start),
                "samples": len(rows),
                "train_loss": result.training_loss,
                "losses": losses,
                "stage": asdict(stage),
            },
        )
    trainer.accelerator.wait_for_everyone()
    log.info("%s: %d samples, train loss %.4f -> %s", name, len(rows), result.training_loss, model_dir)
    return model_dir


def glpft(
    base: str | Path, data: dict[str, list[dict[str, Any]]], cfg: TrainConfig, out: Path
) -> dict[str, Path]:
    """Stage 1 on the backbone data, then each role from the stage-1 checkpoint on its own data."""
    backbone = sft(base, data["backbone"], cfg.stage1, cfg, out, name="glpft-stage1")
    return {
        "backbone": backbone,
        **{r: sft(backbone, data[r], cfg.stage(r), cfg, out, name=f"glpft-{r}") for r in ROLES},
    }


def stage2_only(
    base: str | Path, data: dict[str, list[dict[str, Any]]], cfg: TrainConfig, out: Path
) -> dict[str, Path]:
    """The ablation without stage 1: each role fine-tuned from the base model on its own data."""
    return {r: sft(base, data[r], cfg.stage(r), cfg, out, name=f"stage2only-{r}") for r in ROLES}


def single_llm(base: str | Path, data: dict[str, list[dict[str, Any]]], cfg: TrainConfig, out: Path) -> Path:
    """The baseline: one LLM of the same size on the single-LLM data, for as many passes as GLPFT's stage 1 plus its
    longest stage-2 run (unless ``baseline_epochs`` says otherwise)."""
    epochs = cfg.baseline_epochs or cfg.stage1.epochs + max(cfg.stage(r).epochs for r in ROLES)
    stage = StageConfig(
        cfg.stage1.learning_rate,
        epochs,
        cfg.stage1.warmup_ratio,
        cfg.stage1.weight_decay,
        cfg.stage1.scheduler,
    )
    return sft(base, data["backbone"], stage, cfg, out, name="single-llm")


def load_done(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / "done.json")
