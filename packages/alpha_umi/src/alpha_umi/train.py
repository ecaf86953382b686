"""GLPFT, the paper's two-stage fine-tuning (Sec. 3.3; official ``GLPFT/scripts/train_toolbench.sh``), on TRL's
``SFTTrainer``.

* Stage 1: the backbone LLM is fine-tuned on the whole tool-use task without splitting it into sub-tasks (the
  single-LLM data, :func:`alpha_umi.data.backbone_samples`), learning the general tool-learning ability.
* Stage 2: the stage-1 checkpoint is copied into the planner, the caller and the summarizer, and each copy is
  fine-tuned on its own sub-task data only.

Every SFT step sees ``system: <input>`` as the prompt and ``<target><eos>`` as the completion, with the loss on the
completion only, tokenized as at inference and cut from the left (:mod:`alpha_umi.tokens`, official ``train.py``).
The model is loaded and laid out by paperlab's scale contract (``train.scale``: launch, precision, LoRA,
checkpointing) and saved with ``trainer.save_model`` (sharded weights gathered). The single-LLM baseline is the backbone trained on the stage-1 data alone;
the "stage-2 only" ablation trains the three roles from the base model.

Each run writes ``<out>/<name>/model`` and a ``done.json`` carrying its :func:`run_key` (the start model, the samples,
the settings): a finished run is reused only for the same key. Trainer checkpoints go to
``<out>/<name>/trainer-<key>`` every ``save_steps`` (``save_strategy: steps``); an interrupted run resumes from the
last one saved completely.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alpha_umi.data import ROLES
from paperlab.config import require
from paperlab.io import atomic_write_json, derived_key, read_json
from paperlab.scale import ScaleConfig

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
    grad_accum: int = 1  # official GA=1
    seed: int = 0
    args: dict[str, Any] = field(default_factory=dict)  # any other SFTConfig field (use_cpu, save_steps, ...)
    # launch, GPUs, precision (fp32 | bf16-mixed | bf16-lora with scale.lora), gradient checkpointing, timeout
    scale: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        require(self.max_length >= 16, "train.max_length", self.max_length, ">= 16")
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        require(self.grad_accum >= 1, "train.grad_accum", self.grad_accum, ">= 1")
        require(self.baseline_epochs >= 0, "train.baseline_epochs", self.baseline_epochs, ">= 0")

    def stage(self, role: str) -> StageConfig:
        return getattr(self, role)


#: SFTConfig fields that change neither the trained model nor its logged losses (left out of :func:`run_key`)
NOT_IN_KEY = ("save_strategy", "save_steps", "save_total_limit", "disable_tqdm")
#: written atomically into a Trainer checkpoint once all of it is on disk (a kill mid-save leaves none)
COMPLETE = "complete.json"


def run_key(start: str | Path, samples: list[dict[str, Any]], stage: StageConfig, cfg: TrainConfig) -> str:
    """What a fine-tuning run is derived from (:func:`paperlab.io.derived_key`): the start model (its name, and its
    files when it is a folder: a retrained stage-1 model or tiny base changes the key), every sample's prompt and
    target, the stage and the training settings (not checkpointing or progress bars)."""
    train = asdict(cfg)
    train["args"] = {k: v for k, v in cfg.args.items() if k not in NOT_IN_KEY}
    settings = {
        "start": str(start),
        "samples": [[s["input"], s["target"]] for s in samples],
        "stage": asdict(stage),
        "train": train,
    }
    return derived_key(settings, [start] if Path(start).is_dir() else [])


def _mark_complete():
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        """After each checkpoint is saved, the main process writes :data:`COMPLETE` into it: a checkpoint without
        it was cut short and is not resumed from (:func:`last_checkpoint`)."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                atomic_write_json(folder / COMPLETE, {"step": state.global_step})
            return control

    return MarkComplete()


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint of ``output_dir`` saved completely (``resume_from_checkpoint``), or None."""
    done = [p for p in Path(output_dir).glob("checkpoint-*") if (p / COMPLETE).is_file()]
    done = [p for p in done if p.name.split("-", 1)[1].isdigit()]
    return str(max(done, key=lambda p: int(p.name.split("-", 1)[1]))) if done else None


def make_trainer(
    start: str | Path, samples: list[dict[str, Any]], stage: StageConfig, cfg: TrainConfig, output_dir: Path
):
    """(``SFTTrainer``, samples truncated) for one run: the model at ``start`` loaded through
    :func:`paperlab.scale.load_for_training` (fp32 master weights or a LoRA adapter on a bf16 base, never the
    checkpoint's own fp16), the rows of :func:`alpha_umi.tokens.sft_rows` (left-truncated, none dropped: TRL's own
    truncation is off), ``trainer_kwargs(cfg.scale)`` merged under ``cfg.args``."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from alpha_umi.tokens import load_tokenizer, sft_rows
    from paperlab.scale import load_for_training, trainer_kwargs

    tok = load_tokenizer(start)
    rows, truncated = sft_rows(tok, samples, cfg.max_length)
    args = SFTConfig(
        **{
            "output_dir": str(output_dir),
            "learning_rate": stage.learning_rate,
            "num_train_epochs": stage.epochs,
            "warmup_steps": stage.warmup_ratio,  # a float < 1 is a fraction of the steps (transformers 5)
            "weight_decay": stage.weight_decay,
            "lr_scheduler_type": stage.scheduler,
            "per_device_train_batch_size": cfg.batch_size,
            "gradient_accumulation_steps": cfg.grad_accum,
            "max_length": None,  # rows are already cut (keep the end); TRL would keep the start and drop samples
            "completion_only_loss": True,
            "seed": cfg.seed,
            "save_strategy": "no",
            "report_to": [],
            "logging_steps": 10,
            **trainer_kwargs(cfg.scale),
            **cfg.args,
        }
    )
    model = load_for_training(start, cfg.scale)  # after the args: ZeRO-3 partitions at load
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[_mark_complete()],
    )
    return trainer, truncated


def _save(trainer: Any, cfg: TrainConfig, start: str | Path, model_dir: Path) -> None:
    """The trained model as a plain checkpoint in ``model_dir``: ``trainer.save_model`` (gathers ZeRO-3 / FSDP
    shards, writes on the main process); a LoRA run saves its adapter and the main process merges it into the
    fp32 base."""
    if not cfg.scale.uses_lora:
        trainer.save_model(str(model_dir))
        return
    adapter = model_dir.parent / "adapter"
    trainer.save_model(str(adapter))
    if trainer.accelerator.is_main_process:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(str(start), dtype=torch.float32)
        PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().save_pretrained(model_dir)
        trainer.processing_class.save_pretrained(model_dir)
    trainer.accelerator.wait_for_everyone()


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
    checkpoint. Under DDP the replicas are checked equal at the end (their digest goes into ``done.json``)."""
    from paperlab.scale import assert_replicas_equal

    run_dir = out / name
    model_dir = run_dir / "model"
    key = run_key(start, samples, stage, cfg)
    done = run_dir / "done.json"
    if done.is_file() and read_json(done).get("key") == key:
        return model_dir
    trainer_dir = run_dir / f"trainer-{key}"  # checkpoints of another key are never resumed from
    trainer, truncated = make_trainer(start, samples, stage, cfg, trainer_dir)
    resume = last_checkpoint(trainer_dir)
    if resume:
        log.info("%s: resuming from %s", name, resume)
    result = trainer.train(resume_from_checkpoint=resume)
    digest = (
        None if cfg.scale.sharded else assert_replicas_equal(trainer.accelerator.unwrap_model(trainer.model))
    )
    _save(trainer, cfg, start, model_dir)
    if trainer.accelerator.is_main_process:
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        atomic_write_json(
            run_dir / "done.json",
            {
                "name": name,
                "key": key,
                "start": str(start),
                "samples": len(samples),
                "truncated": truncated,
                "train_loss": result.training_loss,
                "losses": losses,
                "stage": asdict(stage),
                "weights_digest": digest,
            },
        )
    trainer.accelerator.wait_for_everyone()
    log.info("%s: %d samples, train loss %.4f -> %s", name, len(samples), result.training_loss, model_dir)
    _release(trainer)
    return model_dir


def _release(trainer: Any) -> None:
    """Free the run's model, optimizer and (DeepSpeed) engine before the next stage loads its own."""
    import gc

    import torch

    trainer.accelerator.free_memory()
    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
