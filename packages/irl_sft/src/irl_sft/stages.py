"""IRFT on a causal LM (paper Sec. 4.2, Algorithm 2), stage by stage on TRL (:class:`irl_sft.trainer.IRFTTrainer`),
laid out on hardware by ``paperlab.scale`` (the ``scale`` block: one process, DDP, FSDP or ZeRO-3; fp32,
bf16-mixed or a LoRA adapter on a bf16 base).

Before anything is generated or trained, :func:`irl_sft.data.stage_plan` counts the usable demonstrations and refuses
a schedule they cannot fill. Stage t = 1..T takes its own slice of ``prompts_per_stage`` demonstrations (the official
``run_IRFT.sh``: 5 stages of 10k of 50k prompts), and:

1. generates one completion per prompt of the slice with pi_t (the stage-start model, whole on every rank's device,
   frozen), the prompts split over the ranks (:mod:`irl_sft.generation`);
2. trains ``IRFTTrainer`` on (prompt, demonstration, generation) with ``ref_model`` = a frozen copy of pi_t
   (:func:`load_stage_models`); with LoRA the adapter is merged into the stage-start weights afterwards, as the
   official ``merging_peft.py`` does, so that the next stage starts from (and is regularised to) the merged model;
3. saves the model (``stage-<t>/model``) and evaluates it (:mod:`irl_sft.evaluate`, sharded), lm-eval included when
   ``eval.lm_eval_tasks`` is set.

``T = 1`` with the SFT model as the start is SPIN. Files (under the results folder, written by the main process):
``stage-<t>/generations.jsonl`` (drawn from the stage's seed and written before training, so a restarted stage
trains on the same pairs), ``stage-<t>/trainer/checkpoint-*`` (when ``train.save_strategy: steps``; a rerun resumes
mid-stage from the last complete one), ``stage-<t>/done.json`` (a rerun skips finished stages), ``metrics.json``,
``results.md``, ``stage_metrics.png``; all resumed only under the same ``run.json`` key (settings and input files,
:func:`irl_sft.checkpoints.run_key`). A DDP run ends by checking that every rank holds the same weights.
"""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from irl_sft.checkpoints import (
    check_model_path,
    check_trainer_options,
    claim_folder,
    last_checkpoint,
    logged_loss,
    run_key,
)
from irl_sft.data import DataConfig, load_prefs, load_rows, source_file, stage_plan
from irl_sft.evaluate import EvalConfig, base_scores, evaluate, lm_eval_scores
from irl_sft.generation import generation_prompt, sharded_completions
from irl_sft.report import stage_report
from irl_sft.reward import RFTConfig, rft_stage
from paperlab.config import require
from paperlab.io import atomic_write_json, atomic_write_text, read_json, read_jsonl
from paperlab.report import results_dir
from paperlab.scale import ScaleConfig

log = logging.getLogger(__name__)

#: TrainingArguments fields the ``scale`` block decides (through :func:`paperlab.scale.trainer_kwargs`).
SCALE_FIELDS = (
    "bf16",
    "fp16",
    "gradient_checkpointing",
    "gradient_checkpointing_kwargs",
    "deepspeed",
    "fsdp",
)


@dataclass
class LLMConfig:
    name: str = "llm"
    method: str = "irft"  # irft (implicit, IRFTTrainer) | rft (explicit: reward model + RLOO per stage)
    model: str = "tiny"  # "tiny": a tiny Llama + tokenizer built locally; else a hub name or local directory
    dtype: str = "auto"  # of the frozen copies (pi_t, generation, judge); the trained weights follow `scale`
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rft: RFTConfig = field(default_factory=RFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: int = 2  # T
    prompts_per_stage: int = 0  # 0: the training demonstrations split evenly into T slices
    beta: float = 0.1
    max_length: int = 128
    min_completion_tokens: int = 8
    long_prompts: str = "error"  # error | drop
    max_new_tokens: int = 32
    do_sample: bool = True  # false: greedy (the official generate_split_data.py)
    temperature: float = 1.0
    generation_batch: int = 16
    generation_template: str = (
        ""  # "": the training prompt; else e.g. "### Instruction: {instruction}\n\n..."
    )
    chat_template: str = ""  # "": the tokenizer's own; else a Jinja template (a base model without one)
    # "" none; else a sequence-classification reward model (hub name or directory, with its own tokenizer) that
    # scores the policy's completions of the held-out prompts at every stage (mean reward; our choice of judge)
    eval_reward_model: str = ""
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)  # IRFTConfig fields (learning_rate, epochs, ...)

    def __post_init__(self) -> None:
        for name in ("model", "eval_reward_model"):
            check_model_path(getattr(self, name), name)
        check_model_path(self.rft.reward_model, "rft.reward_model")
        require(self.method in ("irft", "rft"), "method", self.method, "irft or rft")
        require(self.data.demos != "", "data.demos", self.data.demos, "a JSONL path or hub:<name>[:<split>]")
        require(
            self.method == "irft" or self.model == "tiny" or self.rft.reward_model != "",
            "rft.reward_model",
            self.rft.reward_model,
            "a hub name or directory of a sequence-classification model when model is not 'tiny'",
        )
        require(self.stages >= 1, "stages", self.stages, ">= 1")
        require(self.prompts_per_stage >= 0, "prompts_per_stage", self.prompts_per_stage, ">= 0")
        require(self.beta > 0, "beta", self.beta, "> 0")
        require(
            0 < self.min_completion_tokens < self.max_length,
            "min_completion_tokens",
            self.min_completion_tokens,
            f"between 1 and max_length - 1 = {self.max_length - 1}",
        )
        require(self.long_prompts in ("error", "drop"), "long_prompts", self.long_prompts, "error or drop")
        require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")
        require(
            not self.do_sample or self.temperature > 0, "temperature", self.temperature, "> 0 when sampling"
        )
        clash = sorted(set(self.train) & set(SCALE_FIELDS))
        require(not clash, "train", clash, "none of these: the scale block sets them (scale.precision, ...)")
        require(
            self.method == "irft" or not self.scale.sharded,
            "scale.launch",
            self.scale.launch,
            "single or ddp for rft",
        )


def _free() -> None:
    """Return freed memory (call after dropping the last reference to a model)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _main_writes(state: Any, path: Path, rows: list[dict[str, Any]]) -> None:
    if state.is_main_process:
        _write_jsonl(path, rows)
    state.wait_for_everyone()


def load_frozen(path: str | Path, cfg_dtype: str = "auto") -> Any:
    """pi_t (or pi_0) frozen, whole on this rank's device (:func:`paperlab.scale.load_for_inference`)."""
    from paperlab.scale import load_for_inference

    with torch.random.fork_rng(devices=[]):  # loading draws nothing from the run's random stream
        return load_for_inference(path, dtype=cfg_dtype)


def load_stage_models(prev: str | Path, scale: ScaleConfig, cfg_dtype: str = "auto") -> tuple[Any, Any]:
    """(policy to train, frozen pi_t) as fresh copies of the stage-start weights ``prev``: the policy through
    :func:`paperlab.scale.load_for_training` (never a ``device_map`` under a launch), pi_t through
    ``load_for_inference``. (TRL patches the models it trains, so a copy of last stage's model would share it.)"""
    from paperlab.scale import load_for_training

    with torch.random.fork_rng(devices=[]):
        policy = load_for_training(prev, scale).train()
    return policy, load_frozen(prev, cfg_dtype)


def _train_kwargs(cfg: LLMConfig) -> dict[str, Any]:
    from paperlab.scale import trainer_kwargs

    return {"save_strategy": "no", "report_to": [], **trainer_kwargs(cfg.scale), **cfg.train}


def irft_stage(
    cfg: LLMConfig, t: int, prev: str | Path, tok: Any, pairs: list[dict[str, str]], stage_dir: Path
) -> tuple[float, str]:
    """One IRFT stage from the weights ``prev``: :class:`irl_sft.trainer.IRFTTrainer` on (demonstration,
    generation) with pi_t = ``prev`` frozen; saves ``stage_dir/model`` (a LoRA adapter merged into ``prev``).
    Returns the training loss and the trained weights' digest (checked equal over DDP ranks)."""
    from datasets import Dataset

    from irl_sft.trainer import IRFTConfig, IRFTTrainer
    from paperlab.scale import assert_replicas_equal, weights_digest

    # the TrainingArguments first: under ZeRO-3 transformers then partitions the weights as they load
    args = IRFTConfig(
        output_dir=str(stage_dir / "trainer"),
        beta=cfg.beta,
        max_length=cfg.max_length,
        seed=cfg.seed + t,
        **_train_kwargs(cfg),
    )
    policy, ref = load_stage_models(prev, cfg.scale, cfg.dtype)
    trainer = IRFTTrainer(
        model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok
    )
    checkpoint = last_checkpoint(
        stage_dir / "trainer"
    )  # the newest complete one (train.save_strategy: steps)
    if checkpoint is not None:
        log.info("stage %d: resuming the Trainer from %s", t, checkpoint)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_loss = logged_loss(trainer, result.training_loss)
    trained = trainer.accelerator.unwrap_model(trainer.model)
    digest = weights_digest(trained) if cfg.scale.sharded else assert_replicas_equal(trained)
    log.info("rank %d weights digest %s (stage %d)", trainer.accelerator.process_index, digest, t)
    if cfg.scale.uses_lora:
        trainer.save_model(str(stage_dir / "adapter"))  # main process only (gathers sharded adapter weights)
        trainer.accelerator.wait_for_everyone()
        if trainer.accelerator.is_main_process:
            merge_adapter(prev, stage_dir / "adapter", stage_dir / "model")
    else:
        trainer.save_model(str(stage_dir / "model"))  # main process only (gathers sharded weights)
    trainer.accelerator.wait_for_everyone()
    del trainer, policy, ref, trained
    _free()
    return train_loss, digest


def merge_adapter(base: str | Path, adapter: Path, out: Path) -> None:
    """The stage-start weights with the stage's LoRA adapter merged in, saved in bf16 (official ``merging_peft.py``)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))


def _start(cfg: LLMConfig, out: Path, state: Any) -> tuple[Path | str, Any]:
    """The stage-0 weights and the tokenizer; ``model: tiny`` builds both once (main process), saved for all."""
    from paperlab.models import load_tokenizer, policy_and_tokenizer

    start_dir = out / "stage-0" / "model"
    start: Path | str = start_dir if cfg.model == "tiny" else cfg.model
    with state.main_process_first():
        if cfg.model == "tiny" and not start_dir.is_dir():
            rows = load_rows(cfg.data.demos)
            model, tok = policy_and_tokenizer(
                "tiny", [" ".join(map(str, r.values())) for r in rows[:2000]], seed=cfg.seed
            )
            model.save_pretrained(start_dir)
            tok.save_pretrained(start_dir)
    tok = load_tokenizer(start)
    if cfg.chat_template:
        tok.chat_template = cfg.chat_template
    return start, tok


def run_llm(cfg: LLMConfig, out_dir: Path | None = None) -> dict[str, Any]:
    from irl_sft.trainer import IRFTConfig
    from paperlab.scale import check_launch, distributed_state
    from paperlab.seed import seed_everything

    # under a launch every process runs this function: generation and evaluation are split over the ranks and
    # gathered on all of them; files are written by the main process
    state = distributed_state(cfg.scale.timeout_s)
    check_launch(cfg.scale, "irl_sft")
    check_trainer_options(IRFTConfig, cfg.train, "llm.train")
    seed_everything(cfg.seed)
    out = Path(out_dir) if out_dir is not None else results_dir("irl_sft", cfg.name)
    for source in (cfg.data.demos, cfg.data.heldout, cfg.data.eval_prefs):
        if (
            source_file(source) is not None
        ):  # a missing or malformed file stops here, before anything is built
            load_rows(source)
    claim_folder(out, run_key(cfg), state)
    start, tok = _start(cfg, out, state)
    plan = stage_plan(cfg, tok)  # counts what survives the filters before anything runs
    held = {
        "prompt": [d["prompt"] for d in plan.held],
        "completion": [d["completion"] for d in plan.held],
    }
    current = load_frozen(start, cfg.dtype)  # pi_t for generation and evaluation
    held_file = out / "heldout_generations.jsonl"
    if held_file.is_file():  # pi_0's generations for the held-out prompts, made once
        held["generation"] = [r["generation"] for r in read_jsonl(held_file)]
    else:
        held["generation"] = sharded_completions(
            cfg, current, tok, [generation_prompt(cfg, d) for d in plan.held]
        )
        _main_writes(state, held_file, [{"generation": g} for g in held["generation"]])
    prefs = load_prefs(cfg, tok) if cfg.data.eval_prefs else None
    base = base_scores(current, tok, held, prefs)
    judge = None
    if cfg.eval_reward_model:
        from paperlab.models import load_tokenizer
        from paperlab.scale import load_for_inference

        judge_model = load_for_inference(
            cfg.eval_reward_model, dtype=cfg.dtype, auto_class="AutoModelForSequenceClassification"
        )
        judge = (judge_model, load_tokenizer(cfg.eval_reward_model), None)

    def evaluate_stage(policy: Any) -> dict[str, Any]:
        rater = None
        if judge is not None:
            rater = (judge[0], judge[1], lambda prompts: sharded_completions(cfg, policy, tok, prompts))
        record: dict[str, Any] = evaluate(policy, base, held, tok, prefs=prefs, judge=rater)
        scores = lm_eval_scores(cfg.eval, policy, tok)
        if scores:
            record["lm_eval"] = scores
        return record

    history = [{"stage": 0, **evaluate_stage(current)}]
    prev: Path | str = start
    prev_reward: Path | None = None  # RFT: the reward model continues from stage to stage
    digest = ""
    for t in range(1, cfg.stages + 1):
        stage_dir = out / f"stage-{t}"
        if (stage_dir / "done.json").is_file():
            history.append(read_json(stage_dir / "done.json"))
            prev = stage_dir / "model"
            prev_reward = stage_dir / "reward" if cfg.method == "rft" else None
            current = None
            _free()
            log.info("stage %d already done (%s)", t, stage_dir)
            continue
        if current is None:
            current = load_frozen(prev, cfg.dtype)
        slice_ = plan.train[(t - 1) * plan.per_stage : t * plan.per_stage]
        gen_file = stage_dir / "generations.jsonl"
        if gen_file.is_file():
            pairs = read_jsonl(gen_file)
        else:  # drawn from the stage's own seed: a resumed run draws what an uninterrupted one drew
            seed_everything(cfg.seed + t)
            samples = sharded_completions(cfg, current, tok, [generation_prompt(cfg, d) for d in slice_])
            pairs = [
                {"prompt": d["prompt"], "chosen": d["completion"], "rejected": s}
                for d, s in zip(slice_, samples, strict=True)
            ]
            _main_writes(state, gen_file, pairs)
        current = None  # the GPU is the trainer's now
        _free()
        extra: dict[str, Any] = {}
        if cfg.method == "rft":
            from paperlab.scale import load_for_training

            policy = load_for_training(prev, cfg.scale).train()
            complete = lambda m, prompts: sharded_completions(cfg, m, tok, prompts)  # noqa: E731
            policy, train_loss, extra = rft_stage(
                cfg, t, policy, tok, pairs, stage_dir, out, prev_reward, _train_kwargs(cfg), complete
            )
            del policy
            _free()
            prev_reward = stage_dir / "reward"
        else:
            train_loss, digest = irft_stage(cfg, t, prev, tok, pairs, stage_dir)
        if state.is_main_process:
            tok.save_pretrained(
                stage_dir / "model"
            )  # with its chat template: the stage model is self-contained
        state.wait_for_everyone()
        current = load_frozen(stage_dir / "model", cfg.dtype)
        record = {
            "stage": t,
            "train_loss": train_loss,
            "pairs": len(pairs),
            **evaluate_stage(current),
            **extra,
        }
        if state.is_main_process:
            atomic_write_json(stage_dir / "done.json", record)
        state.wait_for_everyone()
        history.append(record)
        prev = stage_dir / "model"
        log.info("%s stage %d/%d: %s", cfg.method.upper(), t, cfg.stages, record)
    metrics = {
        "config": asdict(cfg),
        "history": history,
        "final_model": str(out / f"stage-{cfg.stages}" / "model"),
        "world_size": state.num_processes,
        "weights_digest": digest,
    }
    if state.is_main_process:
        stage_report(cfg, out, metrics, plan.per_stage, len(plan.held))
    state.wait_for_everyone()
    return metrics
