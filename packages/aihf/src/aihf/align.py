"""AIHF on a real LLM (the implicit variant, paper Sec. 3 + Alg. 1 with the DPO substitution), on TRL, under
paperlab's scale contract (one process or ``accelerate launch``: DDP).

Each AIHF iteration: (1) the current policy samples one completion for every demonstration prompt (self-play
negatives of the demonstration term; sharded over the ranks); (2) one training pass of
:class:`aihf.trainer.AIHFTrainer` over the demonstration rows (``chosen`` = demonstration, ``rejected`` = the fresh
sample, ``is_demo``) and the preference rows; (3) evaluation (:mod:`aihf.llm_eval`): reward-model score and win
rate against the starting (SFT) model on held-out prompts, lm-eval tasks. The reference model stays the initial
policy (frozen, :func:`paperlab.scale.load_for_inference`; the disabled adapter under LoRA). Iterations are
checkpointed in ``<out>/iter-<k>/`` (``samples.json`` before training, then ``trainer.save_model``, tokenizer,
``done.json``; written by the main process only), and within an iteration every ``train.save_steps`` steps when
``train.save_strategy: steps`` (``iter-<k>/trainer-<key>/checkpoint-*``): a rerun resumes after the last finished
iteration, mid-pass from the last complete Trainer checkpoint, and ends where an uninterrupted run ends (each
iteration's self-play samples are drawn from its own seed). Everything resumed carries :func:`run_key` (settings and
data files): a changed setting or file starts over. Data: :mod:`aihf.llm_data`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aihf.llm_data import DataConfig, DataError, load_demos, load_prefs, load_prompts, source_file, split_hh
from aihf.llm_eval import EvalConfig, answer_and_score, judge_summary, lm_eval_numbers, load_judge
from paperlab.config import ConfigError, require
from paperlab.io import atomic_write_json, derived_key, read_json
from paperlab.report import results_dir, write_results
from paperlab.scale import (
    ScaleConfig,
    assert_replicas_equal,
    check_launch,
    distributed_state,
    is_main_process,
    map_sharded,
    prepare_for_training,
    trainer_kwargs,
    world_size,
)

__all__ = [
    "AlignConfig",
    "DataConfig",
    "DataError",
    "load_demos",
    "load_prefs",
    "run_align",
    "sample_completions",
    "split_hh",
]
log = logging.getLogger(__name__)


@dataclass
class AlignConfig:
    name: str = "align"
    model: str = "tiny"  # "tiny": a tiny Llama + tokenizer built locally; else a hub name or local directory
    data: DataConfig = field(default_factory=DataConfig)
    w_demo: float = 1.0
    w_pref: float = 1.0
    demo_form: str = "linear"  # linear (ML-IRL gradient; the README's tables) | logistic (self-play, SPIN)
    beta: float = 0.1
    iterations: int = 2
    max_new_tokens: int = 64
    temperature: float = 1.0
    generation_batch: int = 16
    seed: int = 0
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: dict[str, Any] = field(
        default_factory=dict
    )  # more AIHFConfig fields (learning_rate, batch size, ...)

    def __post_init__(self) -> None:
        require(self.iterations >= 1, "iterations", self.iterations, ">= 1")
        require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")
        require(self.beta > 0, "beta", self.beta, "> 0")
        require(self.demo_form in ("linear", "logistic"), "demo_form", self.demo_form, "linear or logistic")
        require(
            self.data.demos != "" or self.w_demo == 0,
            "data.demos",
            self.data.demos,
            "a JSONL path or hub:<name>",
        )
        require(
            self.data.prefs != "" or self.w_pref == 0,
            "data.prefs",
            self.data.prefs,
            "a JSONL path or hub:<name>",
        )
        require(
            not self.scale.sharded,
            "scale.launch",
            self.scale.launch,
            "single or ddp: AIHF samples from the policy on every rank between passes, which FSDP/ZeRO-3 "
            "shards would need in lockstep (Pythia-1.4B fits one GPU under DDP)",
        )
        owned = sorted(set(self.train) & set(trainer_kwargs(self.scale)) | set(self.train) & {"output_dir"})
        require(
            not owned,
            "train",
            owned,
            "fields the scale block sets (scale.precision / launch / checkpointing)",
        )
        from aihf.checkpoints import check_model_path
        from aihf.losses import check_weights

        check_model_path(self.model, "model")
        check_model_path(self.eval.judge, "eval.judge")

        try:
            check_weights(self.w_demo, self.w_pref)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def _policy_and_tokenizer(cfg: AlignConfig, texts: list[str], resume: Path | None) -> tuple[Any, Any, Any]:
    """(policy to train, frozen reference or None under LoRA, tokenizer)."""
    from paperlab.models import load_tokenizer, policy_and_tokenizer
    from paperlab.scale import load_for_inference, load_for_training

    if cfg.model == "tiny":
        initial, tok = policy_and_tokenizer("tiny", texts, seed=cfg.seed)
        ref = copy.deepcopy(initial).eval().requires_grad_(False)
        if resume is not None:
            from transformers import AutoModelForCausalLM

            initial = AutoModelForCausalLM.from_pretrained(resume)
        return prepare_for_training(initial, cfg.scale), ref, tok
    tok = load_tokenizer(cfg.model)
    if resume is not None and cfg.scale.uses_lora:  # the saved adapter on a fresh bf16 base
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from paperlab.scale import rank_device

        base = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.bfloat16).to(rank_device())
        policy = PeftModel.from_pretrained(base, resume, is_trainable=True)
    else:
        policy = load_for_training(resume or cfg.model, cfg.scale)
    ref = None if cfg.scale.uses_lora else load_for_inference(cfg.model)
    return policy, ref, tok


def sample_completions(model: Any, tok: Any, prompts: list[str], cfg: AlignConfig) -> list[str]:
    """One sampled completion per prompt from the current policy, sharded over the ranks."""
    from paperlab.models import sample_completions as sample

    def shard(items: list[str]) -> list[str]:
        return sample(
            model,
            tok,
            items,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            batch_size=cfg.generation_batch,
        )

    return map_sharded(shard, prompts)


#: ``train`` fields that only say when to checkpoint or log: they do not change the trained weights
_NOT_IN_KEY = ("save_strategy", "save_steps", "save_total_limit", "logging_steps", "report_to")


def run_key(cfg: AlignConfig) -> str:
    """The key of everything a run derives (iterations, the starting model's scores, Trainer checkpoints): every
    setting but ``name`` and ``iterations`` (iteration k does not depend on how many follow) and the data files'
    path, size and modification time (:func:`paperlab.io.derived_key`). A rerun resumes only what has this key."""
    settings = asdict(cfg)
    settings["train"] = {k: v for k, v in cfg.train.items() if k not in _NOT_IN_KEY}
    files = [source_file(s) for s in (cfg.data.demos, cfg.data.prefs, cfg.eval.prompts)]
    local = [Path(m) for m in (cfg.model, cfg.eval.judge) if m not in ("", "tiny") and Path(m).exists()]
    return derived_key(settings, [f for f in files if f is not None] + local, drop=("name", "iterations"))


def _done(out: Path, k: int, key: str) -> dict[str, Any] | None:
    path = out / f"iter-{k}" / "done.json"
    record = read_json(path) if path.is_file() else None
    return record if isinstance(record, dict) and record.get("key") == key else None


def _last_done(out: Path, iterations: int, key: str) -> int:
    """The last iteration finished with this key, all before it too (0: none)."""
    k = 0
    while k < iterations and _done(out, k + 1, key) is not None:
        k += 1
    return k


def _self_play(
    cfg: AlignConfig, policy: Any, tok: Any, demos: list[dict], k: int, key: str, out: Path
) -> list:
    """Iteration k's samples of the current policy for the demonstration prompts: drawn from the seed of the
    iteration (so a resumed run draws what the uninterrupted one drew) and kept in ``iter-<k>/samples.json``
    before training, so that a pass resumed from a Trainer checkpoint trains on the same rows."""
    from paperlab.seed import seed_everything

    path = out / f"iter-{k}" / "samples.json"
    saved = read_json(path) if path.is_file() else None
    if isinstance(saved, dict) and saved.get("key") == key:
        return saved["samples"]
    seed_everything(cfg.seed + k)
    samples = sample_completions(policy, tok, [d["prompt"] for d in demos], cfg)
    if is_main_process():
        atomic_write_json(path, {"key": key, "samples": samples})
    distributed_state(cfg.scale.timeout_s).wait_for_everyone()
    return samples


def run_align(cfg: AlignConfig, out_dir: Path | None = None) -> dict[str, Any]:
    from datasets import Dataset

    from aihf.checkpoints import check_trainer_options, last_checkpoint, logged_loss
    from aihf.trainer import AIHFConfig, AIHFTrainer
    from paperlab.seed import seed_everything

    state = distributed_state(cfg.scale.timeout_s)
    check_launch(cfg.scale, "aihf")
    check_trainer_options(AIHFConfig, cfg.train, "align.train")
    seed_everything(cfg.seed)
    out = Path(out_dir) if out_dir is not None else results_dir("aihf", cfg.name)
    # every input is read and checked before a model is built
    demos = load_demos(cfg.data) if cfg.w_demo > 0 else []
    prefs = load_prefs(cfg.data) if cfg.w_pref > 0 else []
    ev = cfg.eval
    prompts = (
        load_prompts(ev.prompts, ev.format, ev.prompt_field, ev.max_prompts, ev.data_dir) if ev.judged else []
    )
    texts = [r["prompt"] + r["completion"] for r in demos] + [r["prompt"] + r["chosen"] for r in prefs]
    key = run_key(cfg)
    start = _last_done(out, cfg.iterations, key)
    resume = out / f"iter-{start}" if start else None
    if resume is not None:
        log.info("resuming after iteration %d (%s)", start, resume)
    policy, ref, tok = _policy_and_tokenizer(cfg, texts, resume)

    judge = judge_tok = None
    base_scores: list[float] = []
    if prompts:
        judge, judge_tok = load_judge(ev, tok, cfg.seed)
        base_file = out / "eval-sft.json"
        saved = read_json(base_file) if base_file.is_file() else None
        if isinstance(saved, dict) and saved.get("key") == key:
            base_scores = saved["scores"]
        else:  # the starting (SFT) model: the reference, or the policy before its first step
            start_model = ref if ref is not None else policy
            texts_sft, base_scores = answer_and_score(start_model, tok, prompts, judge, judge_tok, ev)
            if is_main_process():
                atomic_write_json(
                    base_file,
                    {"key": key, "prompts": prompts, "completions": texts_sft, "scores": base_scores},
                )

    history = [_done(out, k, key) for k in range(1, start + 1)]  # finished before: read back
    for k in range(start + 1, cfg.iterations + 1):
        rows = [{**r, "is_demo": False} for r in prefs]
        if demos:
            samples = _self_play(cfg, policy, tok, demos, k, key, out)
            rows += [
                {"prompt": d["prompt"], "chosen": d["completion"], "rejected": s, "is_demo": True}
                for d, s in zip(demos, samples, strict=True)
            ]
        trainer_dir = out / f"iter-{k}" / f"trainer-{key}"  # Trainer checkpoints (train.save_strategy: steps)
        args = AIHFConfig(
            output_dir=str(trainer_dir),
            w_demo=cfg.w_demo,
            w_pref=cfg.w_pref,
            demo_form=cfg.demo_form,
            beta=cfg.beta,
            seed=cfg.seed + k,
            **{"save_strategy": "no", "report_to": [], **trainer_kwargs(cfg.scale), **cfg.train},
        )
        trainer = AIHFTrainer(
            model=policy,
            ref_model=ref,
            args=args,
            train_dataset=Dataset.from_list(rows).shuffle(seed=cfg.seed + k),
            processing_class=tok,
        )
        checkpoint = last_checkpoint(trainer_dir)
        if checkpoint is not None:
            log.info("iteration %d: resuming the Trainer from %s", k, checkpoint)
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        policy = trainer.model
        trainer.save_model(str(out / f"iter-{k}"))  # the Trainer writes on the main process only
        record: dict[str, Any] = {
            "iteration": k,
            "key": key,
            "train_loss": logged_loss(trainer, result.training_loss),
            "rows": len(rows),
        }
        if prompts:
            completions, scores = answer_and_score(policy, tok, prompts, judge, judge_tok, ev)
            record["eval"] = judge_summary(scores, base_scores)
        if is_main_process():
            tok.save_pretrained(out / f"iter-{k}")
            if ev.lm_eval_tasks:
                record["lm_eval"] = lm_eval_numbers(policy, tok, ev)
            if prompts:
                atomic_write_json(
                    out / f"iter-{k}" / "eval.json",
                    {**record["eval"], "prompts": prompts, "completions": completions, "scores": scores},
                )
            atomic_write_json(out / f"iter-{k}" / "done.json", record)
        state.wait_for_everyone()
        history.append(record)
        log.info(
            "AIHF iteration %d: loss %.4f over %d rows %s",
            k,
            record["train_loss"],
            len(rows),
            record.get("eval", ""),
        )
        del trainer
    digest = assert_replicas_equal(policy) if world_size() > 1 else None
    metrics = {
        "config": asdict(cfg),
        "history": history,
        "final": str(out / f"iter-{cfg.iterations}"),
        "world_size": world_size(),
        "weights_digest": digest,
    }
    if is_main_process():
        rows_md = [
            {"iteration": h["iteration"], "train loss": h["train_loss"], **h.get("eval", {})} for h in history
        ]
        write_results(
            out, metrics, rows=rows_md or None, title=f"aihf {cfg.name}: AIHF on an LLM", floatfmt=".3f"
        )
    state.wait_for_everyone()
    return metrics
