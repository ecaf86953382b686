"""The ProFuser pipeline end to end, at either scale, and its report.

1. Sources and target: tiny specialists trained in :mod:`profuser.world` (``model: tiny``) or hub checkpoints.
2. Training mode: every source's representation of the ground-truth responses (:mod:`profuser.represent`), the
   MinCE source per sample (:func:`profuser.advantage.training_mode_choice`).
3. Inference mode: every source answers every prompt (greedy), the reward model scores the answers, the best
   source's answer with its own distributions is the sample (:func:`profuser.advantage.inference_mode_choice`,
   ties by the sources' cross entropy on their own answer).
4. Methods, each a fresh target trained for the same number of steps with :class:`profuser.trainer.ProFuserTrainer`:
   ``SFT`` (ground truth, lam = 1), ``FuseLLM`` (training mode), ``Inference`` (inference mode only) and
   ``ProFuser`` (inference mode, then training mode: the schedule).
5. Tiny scale: per-skill accuracy of greedy answers on held-out prompts, for the sources, the ground truth and every
   method and seed -> ``results.md``, ``metrics.json``, ``accuracy.png``, ``loss_curves.png``. Paper scale: the
   fused model is saved; the evaluation suites run with ``lm-eval`` (commands in the README).

Every stage is cached in the results folder (sources, representation stores, generations, one line per finished
run), so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState

from paperlab.config import ConfigError, require
from paperlab.io import JsonlCache
from paperlab.models import load_causal_lm, load_tokenizer, tiny_causal_lm, train_tiny_tokenizer
from paperlab.report import results_dir
from paperlab.seed import seed_everything
from profuser.advantage import fuse, inference_mode_choice, training_mode_choice
from profuser.evaluate import paper_report, report, selection_stats, skill_accuracy
from profuser.generate import greedy_responses, server_responses
from profuser.represent import ModelSide, RepresentationStore, Sample, check_same_samples
from profuser.reward import ModelReward, RuleReward
from profuser.schedule import ScheduleConfig
from profuser.sources import LMTrainConfig, TinySourceSpec, tiny_source
from profuser.trainer import ProFuserConfig, ProFuserTrainer, to_item
from profuser.world import SPECIALIST_SKILLS, WorldConfig, build_world, score, texts_for_tokenizer

log = logging.getLogger(__name__)

#: method -> (schedule kind, uses fusion (lam from config) or SFT (lam = 1))
METHODS = {
    "SFT": ("training", False),
    "FuseLLM": ("training", True),
    "Inference": ("inference", True),
    "ProFuser": (None, True),  # the configured schedule
    "ProFuser-2stage": ("stages", True),  # ablation: a hard switch at fusion.schedule.switch
}


@dataclass
class SourceConfig:
    name: str
    model: str = "tiny"  # "tiny" (a specialist of the world, trained here) or a hub name / folder
    skill: str = ""  # tiny: the skill it specialises in
    vocab_size: int = 300  # tiny: its tokenizer's size
    family: str = "llama"  # tiny: architecture family
    chat: bool = False  # prompts through the tokenizer's chat template
    server: str = (
        ""  # base URL of an OpenAI-compatible server (vLLM) serving `model`, for the inference-mode answers
    )

    def __post_init__(self) -> None:
        require(bool(self.name), "sources[].name", self.name, "a non-empty label")
        if self.server:
            require(
                self.server.startswith(("http://", "https://")),
                f"sources[{self.name}].server",
                self.server,
                "an http(s) base URL",
            )
        if self.model == "tiny":
            require(
                self.skill in SPECIALIST_SKILLS,
                f"sources[{self.name}].skill",
                self.skill,
                f"one of {SPECIALIST_SKILLS}",
            )


@dataclass
class TargetConfig:
    model: str = "tiny"
    vocab_size: int = 512
    family: str = "llama"
    layers: int = 2
    hidden: int = 64
    chat: bool = False


@dataclass
class DataConfig:
    """Paper scale: the fusion corpus from the hub (ShareGPT-style ``conversations`` or two text fields)."""

    dataset: str = ""
    split: str = "train"
    format: str = "sharegpt"  # sharegpt | fields
    prompt_field: str = "prompt"
    response_field: str = "response"
    limit: int = 0  # 0 = all
    max_tokens: int = (
        2048  # samples longer than this in the target tokenizer (prompt + response) are left out
    )

    def __post_init__(self) -> None:
        require(self.format in ("sharegpt", "fields"), "data.format", self.format, "sharegpt or fields")


@dataclass
class FusionConfig:
    k: int = 10  # top-k kept per token (FuseLLM: 10)
    lam: float = 0.9  # weight of the CLM loss (FuseLLM Sec. 4.1: 0.9)
    temperature: float = 1.0
    reward: str = "rule"  # rule (the tiny world's checker) | a reward model's hub name / folder
    max_new_tokens: int = 28
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        require(self.k >= 1, "fusion.k", self.k, ">= 1")
        require(0.0 <= self.lam <= 1.0, "fusion.lam", self.lam, "in [0, 1]")


@dataclass
class TrainConfig:
    steps: int = 1200
    batch: int = 32
    grad_accum: int = 1
    lr: float = 3.0e-3
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    bf16: bool = False
    gradient_checkpointing: bool = False
    save_steps: int = 0  # 0 = no checkpoints (tiny); paper: every N steps, resumed automatically
    logging_steps: int = 10

    def __post_init__(self) -> None:
        require(self.steps > 0, "train.steps", self.steps, "> 0")
        require(self.batch > 0, "train.batch", self.batch, "> 0")


@dataclass
class ExperimentConfig:
    name: str = "tiny"
    world: WorldConfig = field(default_factory=WorldConfig)
    sources: list[SourceConfig] = field(default_factory=list)
    source_train: LMTrainConfig = field(default_factory=LMTrainConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_tasks: list[str] = field(
        default_factory=list
    )  # paper scale: lm-eval tasks, for the README's commands
    progress: bool = True

    def __post_init__(self) -> None:
        require(bool(self.sources), "sources", self.sources, "at least one source")
        names = [s.name for s in self.sources]
        require(len(set(names)) == len(names), "sources[].name", names, "unique names")
        bad = [m for m in self.methods if m not in METHODS]
        require(
            not bad and bool(self.methods), "methods", self.methods, f"a non-empty subset of {list(METHODS)}"
        )
        require(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        if self.is_tiny:
            require(
                self.target.model == "tiny", "target.model", self.target.model, "tiny when the sources are"
            )
            require(
                self.fusion.reward == "rule", "fusion.reward", self.fusion.reward, "rule in the tiny world"
            )
        else:
            require(
                bool(self.data.dataset), "data.dataset", self.data.dataset, "a hub data set at paper scale"
            )

    @property
    def is_tiny(self) -> bool:
        return all(s.model == "tiny" for s in self.sources)


# ----------------------------------------------------------------------------------------------- models and data


def target_tokenizer(cfg: ExperimentConfig, texts: list[str], out: Path):
    """The target's tokenizer: trained once on the world's texts and kept in the results folder (tiny), or the
    hub model's."""
    t = cfg.target
    if t.model != "tiny":
        return load_tokenizer(t.model)
    tok_dir = out / "target_tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        return load_tokenizer(tok_dir)
    tokenizer = train_tiny_tokenizer(texts, vocab_size=t.vocab_size)
    tokenizer.save_pretrained(tok_dir)
    return tokenizer


def fresh_target(cfg: ExperimentConfig, tokenizer, seed: int):
    """The model every method starts from: a tiny LM of ``seed`` or the hub checkpoint."""
    t = cfg.target
    if t.model == "tiny":
        return tiny_causal_lm(
            tokenizer=tokenizer, layers=t.layers, hidden=t.hidden, family=t.family, seed=seed
        )
    return load_causal_lm(t.model)


def load_source(cfg: ExperimentConfig, s: SourceConfig, world, out: Path) -> ModelSide:
    """A tiny specialist (trained once, then reloaded from the results folder) or a hub checkpoint."""
    if s.model == "tiny":
        spec = TinySourceSpec(s.skill, s.vocab_size, s.family)
        model, tok = tiny_source(
            spec,
            world.source_data[s.skill],
            cfg.source_train,
            out / "sources" / s.name,
            progress=cfg.progress,
        )
        return ModelSide(s.name, model, tok, chat=False)
    return ModelSide(
        s.name,
        load_causal_lm(s.model, trust_remote_code=True),
        load_tokenizer(s.model, trust_remote_code=True),
        chat=s.chat,
    )


def load_fusion_samples(data: DataConfig) -> list[Sample]:
    """Paper scale: (prompt, ground truth) pairs of the first turn of each conversation."""
    from datasets import load_dataset

    rows = load_dataset(data.dataset, split=data.split)
    if data.limit:
        rows = rows.select(range(min(data.limit, len(rows))))
    out = []
    for i, row in enumerate(rows):
        if data.format == "sharegpt":
            turns = row.get("conversations")
            if not turns or len(turns) < 2:
                raise ConfigError(f"{data.dataset}[{i}]: expected a 'conversations' list of >= 2 turns")
            prompt, response = turns[0]["value"], turns[1]["value"]
        else:
            for name in (data.prompt_field, data.response_field):
                if name not in row:
                    raise ConfigError(f"{data.dataset}[{i}]: no field {name!r} (fields: {sorted(row)})")
            prompt, response = row[data.prompt_field], row[data.response_field]
        out.append(Sample(str(row.get("id", i)), prompt, " " + response.strip()))
    return out


# ----------------------------------------------------------------------------------------------- the two modes


@dataclass
class Modes:
    """Both modes' items and choices: ``training_items`` (ground truth, MinCE source), ``inference_items`` (the
    reward-chosen answer with its source's distributions); ``ce`` and ``rewards`` are (sources, samples)."""

    training_items: list[dict]
    inference_items: list[dict]
    training_choice: np.ndarray
    inference_choice: np.ndarray
    ce: np.ndarray
    rewards: np.ndarray


def build_modes(
    cfg: ExperimentConfig, world, target: ModelSide, samples: list[Sample], reward, out: Path
) -> Modes:
    """One source at a time (a 7B source is loaded, used for both modes, and freed): its representation of the
    ground truth, its greedy answers, their reward and its representation of its own answers. Then MinCE
    (training mode) and the highest reward, ties by the lowest cross entropy on the own answer (inference mode)."""
    answers = JsonlCache(out / "generations.jsonl")
    prompts = [s.prompt for s in samples]
    gt_stores, own_reps, rewards, own_ce = {}, [], [], []
    k = cfg.fusion.k
    for s_cfg in cfg.sources:
        name = s_cfg.name
        gt_store = RepresentationStore(out / "reps" / "training" / name)
        own_store = RepresentationStore(out / "reps" / "inference" / name)
        todo = [s for s in samples if f"{name}/{s.uid}" not in answers]
        own = (
            None
            if todo
            else [Sample(s.uid, s.prompt, answers.get(f"{name}/{s.uid}")["text"]) for s in samples]
        )
        cached = (
            own is not None
            and gt_store.is_complete(RepresentationStore.key(name, target.name, samples, k))
            and own_store.is_complete(RepresentationStore.key(name, target.name, own, k))
        )
        # a finished source is not loaded again (at paper scale: 7B weights, in every process of a launch)
        src = ModelSide(name, None, None) if cached else load_source(cfg, s_cfg, world, out)
        gt_stores[name] = gt_store.build(src, target, samples, k=k, progress=cfg.progress).load()
        if todo:
            prompts_todo = [s.prompt for s in todo]
            if s_cfg.server:
                texts = server_responses(
                    s_cfg.server,
                    s_cfg.model,
                    prompts_todo,
                    max_new_tokens=cfg.fusion.max_new_tokens,
                    chat=s_cfg.chat,
                )
            else:
                texts = greedy_responses(
                    src.model,
                    src.tokenizer,
                    prompts_todo,
                    max_new_tokens=cfg.fusion.max_new_tokens,
                    chat=src.chat,
                    progress=cfg.progress,
                    desc=f"answers of {name}",
                )
            answers.extend({"key": f"{name}/{s.uid}", "text": t} for s, t in zip(todo, texts, strict=True))
            own = [Sample(s.uid, s.prompt, answers.get(f"{name}/{s.uid}")["text"]) for s in samples]
        loaded = own_store.build(src, target, own, k=k, progress=cfg.progress).load()
        own_reps.append([loaded[s.uid] for s in samples])
        own_ce.append([loaded[s.uid].ce for s in samples])
        rewards.append(reward.score(prompts, [o.response for o in own]))
        del src
    uids = check_same_samples(gt_stores)
    names = [s.name for s in cfg.sources]
    ce = np.array([[gt_stores[n][u].ce for u in uids] for n in names])
    t_choice = training_mode_choice(ce)
    training_items = [
        to_item(fuse([gt_stores[n][u] for n in names], int(c))) for u, c in zip(uids, t_choice, strict=True)
    ]
    rewards_arr = np.array(rewards)
    i_choice = inference_mode_choice(rewards_arr, tie_break=np.array(own_ce))
    inference_items = [to_item(own_reps[int(c)][i]) for i, c in enumerate(i_choice)]
    return Modes(training_items, inference_items, t_choice, i_choice, ce, rewards_arr)


# ----------------------------------------------------------------------------------------------- training and eval


def train_method(
    method: str, seed: int, tokenizer, modes: Modes, cfg: ExperimentConfig, out: Path
) -> tuple[Any, list[dict]]:
    """A fresh target trained by ``method``; returns (model, log history). Paper scale: also saved."""
    kind, fused = METHODS[method]
    schedule = cfg.fusion.schedule if kind is None else ScheduleConfig(kind, cfg.fusion.schedule.switch)
    seed_everything(seed)
    model = fresh_target(cfg, tokenizer, seed)
    run_dir = out / "runs" / f"{method}-seed{seed}"
    t = cfg.train
    args = ProFuserConfig(
        output_dir=str(run_dir),
        max_steps=t.steps,
        per_device_train_batch_size=t.batch,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a share of max_steps
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.scheduler,
        bf16=t.bf16,
        activation_checkpointing=t.gradient_checkpointing,
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        logging_steps=t.logging_steps,
        report_to=[],
        seed=seed,
        data_seed=seed,
        disable_tqdm=not cfg.progress,
        use_cpu=not torch.cuda.is_available(),
        lam=cfg.fusion.lam if fused else 1.0,
        temperature=cfg.fusion.temperature,
        schedule_kind=schedule.kind,
        switch=schedule.switch,
        dataloader_num_workers=0,
    )
    trainer = ProFuserTrainer(
        model, args, modes.inference_items, modes.training_items, tokenizer.pad_token_id
    )
    resume = t.save_steps > 0 and any(run_dir.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    if not cfg.is_tiny:
        trainer.save_model(str(run_dir / "final"))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(run_dir / "final")
    model.eval()
    return model, [row for row in trainer.state.log_history if "loss" in row]


def _config_hash(cfg: ExperimentConfig) -> str:
    keep = {k: v for k, v in asdict(cfg).items() if k not in ("name", "methods", "seeds", "progress")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run(cfg: ExperimentConfig) -> dict[str, Any]:
    out = results_dir("profuser", cfg.name)
    if cfg.is_tiny:
        world = build_world(cfg.world)
        samples = [Sample(e.uid, e.prompt, e.gt) for e in world.fusion]
        tokenizer = target_tokenizer(cfg, texts_for_tokenizer(world), out)
        reward = RuleReward(score)
    else:
        world = None
        tokenizer = target_tokenizer(cfg, [], out)
        samples = _fit(load_fusion_samples(cfg.data), tokenizer, cfg)
        reward = ModelReward.load(cfg.fusion.reward)
    target = ModelSide("target", None, tokenizer, chat=cfg.target.chat)
    state = (
        PartialState()
    )  # under `accelerate launch`: the main process builds the modes and writes, the rest load
    with state.main_process_first():
        modes = build_modes(cfg, world, target, samples, reward, out)
    rows_cache = JsonlCache(out / f"runs-{_config_hash(cfg)}.jsonl")
    for method in cfg.methods:
        for seed in cfg.seeds:
            key = f"{method}/{seed}"
            if key in rows_cache:
                continue
            model, history = train_method(method, seed, tokenizer, modes, cfg, out)
            record = {"key": key, "method": method, "seed": seed, "history": history}
            if world is not None:
                record["accuracy"] = skill_accuracy(
                    model, tokenizer, world.evaluation, cfg.fusion.max_new_tokens
                )
                log.info(
                    "%s seed %d: %s", method, seed, {k: round(v, 1) for k, v in record["accuracy"].items()}
                )
            if state.is_main_process:
                rows_cache.append(record)
    if not state.is_main_process:
        return {}
    if world is None:
        return paper_report(cfg, out, modes)
    acc_rows: dict[str, dict[str, float]] = {}
    for s_cfg in cfg.sources:
        src = load_source(cfg, s_cfg, world, out)
        acc_rows[f"source {src.name}"] = skill_accuracy(
            src.model, src.tokenizer, world.evaluation, cfg.fusion.max_new_tokens
        )
    gt = {
        s: 100 * statistics.fmean(e.gt_is_correct for e in world.fusion if e.skill == s)
        for s in world.evaluation
    }
    acc_rows["ground truth (fusion corpus)"] = {**gt, "mean": statistics.fmean(gt.values())}
    selection = selection_stats(cfg, world, modes.training_choice, modes.inference_choice, modes.rewards)
    return report(cfg, out, world, rows_cache, acc_rows, selection)


def _fit(samples: list[Sample], tokenizer, cfg: ExperimentConfig) -> list[Sample]:
    """Leave out samples longer than ``data.max_tokens`` target tokens (FuseLLM trains on 2,048-token windows)."""
    from profuser.generate import format_prompt

    kept = [
        s
        for s in samples
        if len(tokenizer(format_prompt(tokenizer, s.prompt, cfg.target.chat) + s.response)["input_ids"])
        <= cfg.data.max_tokens
    ]
    log.info(
        "fusion corpus: %d samples, %d left out as longer than %d tokens",
        len(kept),
        len(samples) - len(kept),
        cfg.data.max_tokens,
    )
    if not kept:
        raise ConfigError(
            f"data.max_tokens={cfg.data.max_tokens}: no sample of {cfg.data.dataset} is that short"
        )
    return kept
