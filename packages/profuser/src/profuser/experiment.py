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
   fused model is saved. At either scale ``eval.lm_eval_tasks`` runs lm-eval on every trained model (main process)
   and its numbers go into the results.

Scale (``train.scale``, :mod:`paperlab.scale`): the process group starts first with the configured timeout, the
launch is checked against the config, the modes are built by all ranks together (:mod:`profuser.modes`), the target
is loaded and laid out by :func:`paperlab.scale.load_for_training` / :func:`~paperlab.scale.prepare_for_training`
and trained with :func:`~paperlab.scale.trainer_kwargs`; DDP replicas are checked equal at the end of each run;
only the main process writes.

Every stage is cached in the results folder (sources, representation stores, generations, one line per finished
run), so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import torch

from paperlab.config import ConfigError
from paperlab.io import JsonlCache, atomic_write_json, derived_key, read_json
from paperlab.models import load_tokenizer, tiny_causal_lm, train_tiny_tokenizer
from paperlab.report import results_dir
from paperlab.scale import (
    assert_replicas_equal,
    check_launch,
    distributed_state,
    is_main_process,
    load_for_inference,
    load_for_training,
    prepare_for_training,
    trainer_kwargs,
)
from paperlab.seed import seed_everything
from profuser.chat import ensure_chat_template
from profuser.config import METHODS, EvalConfig, ExperimentConfig, SourceConfig
from profuser.corpus import load_fusion_samples
from profuser.evaluate import paper_report, report, selection_stats, skill_accuracy
from profuser.generate import encode_prompt
from profuser.modes import Modes, build_modes, load_source
from profuser.ranks import barrier, main_decides
from profuser.represent import ModelSide, Sample
from profuser.reward import ModelReward, RuleReward
from profuser.schedule import ScheduleConfig
from profuser.trainer import ProFuserConfig, ProFuserTrainer, last_checkpoint
from profuser.world import build_world, score, texts_for_tokenizer

log = logging.getLogger(__name__)

__all__ = ["ExperimentConfig", "SourceConfig", "load_fusion_samples", "load_source", "run", "train_method"]


# ----------------------------------------------------------------------------------------------- models and data


def target_tokenizer(cfg: ExperimentConfig, texts: list[str], out: Path):
    """(tokenizer, fingerprint) of the target: trained once on the world's texts by the main process and kept in
    the results folder, reused while its vocabulary size and texts are the same (tiny), or the hub model's, given
    ``target.chat_template`` where it has none. The fingerprint (:func:`paperlab.io.derived_key`) keys every
    store in target token ids."""
    t = cfg.target
    if t.model != "tiny":
        local = [t.model] if Path(t.model).expanduser().exists() else []
        key = derived_key({"model": t.model, "chat": t.chat, "chat_template": t.chat_template}, local)
        tokenizer = load_tokenizer(t.model)
        return (ensure_chat_template(tokenizer, t.chat_template, "target") if t.chat else tokenizer), key
    key = derived_key({"vocab_size": t.vocab_size, "texts": texts})
    tok_dir = out / "target_tokenizer"
    stamp = tok_dir / "key.json"
    with distributed_state().main_process_first():
        if (tok_dir / "tokenizer.json").exists() and stamp.exists() and read_json(stamp).get("key") == key:
            return load_tokenizer(tok_dir), key
        tokenizer = train_tiny_tokenizer(texts, vocab_size=t.vocab_size)
        if is_main_process():
            tokenizer.save_pretrained(tok_dir)
            atomic_write_json(stamp, {"key": key})
        return tokenizer, key


def fresh_target(cfg: ExperimentConfig, tokenizer, seed: int):
    """The model every method starts from, laid out for ``train.scale``: a tiny LM of ``seed`` or the hub
    checkpoint (fp32 master weights; with ZeRO-3, call after the ``TrainingArguments`` exist)."""
    t, scale = cfg.target, cfg.train.scale
    if t.model == "tiny":
        model = tiny_causal_lm(
            tokenizer=tokenizer, layers=t.layers, hidden=t.hidden, family=t.family, seed=seed
        )
        return prepare_for_training(model, scale)
    return load_for_training(t.model, scale)


# ----------------------------------------------------------------------------------------------- training and eval


def train_method(
    method: str, seed: int, tokenizer, modes: Modes, cfg: ExperimentConfig, out: Path
) -> tuple[Any, list[dict], str]:
    """A fresh target trained by ``method``; returns (model, log history, weights digest). DDP / one process: the
    replicas are checked equal (:func:`paperlab.scale.assert_replicas_equal`). Paper scale: saved with
    ``trainer.save_model`` (the full weights, gathered under ZeRO-3 / FSDP) to ``runs/<method>-seed<seed>-<key>/final``."""
    kind, fused = METHODS[method]
    schedule = cfg.fusion.schedule if kind is None else ScheduleConfig(kind, cfg.fusion.schedule.switch)
    seed_everything(seed)
    run_dir = cfg.run_folder(out, method, seed)
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
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=2,  # the newest may be cut short by an interrupt: the one before stays
        logging_steps=t.logging_steps,
        report_to=[],
        seed=seed,
        data_seed=seed,
        disable_tqdm=not (cfg.progress and is_main_process()),
        use_cpu=not torch.cuda.is_available(),
        lam=cfg.fusion.lam if fused else 1.0,
        temperature=cfg.fusion.temperature,
        schedule_kind=schedule.kind,
        switch=schedule.switch,
        dataloader_num_workers=0,
        **trainer_kwargs(t.scale),
    )
    model = fresh_target(cfg, tokenizer, seed)
    trainer = ProFuserTrainer(
        model, args, modes.inference_items, modes.training_items, tokenizer.pad_token_id
    )
    resume = main_decides(last_checkpoint(run_dir) if t.save_steps > 0 else None)
    if resume:
        log.info("%s seed %d: resuming from %s", method, seed, resume)
    trainer.train(resume_from_checkpoint=resume)
    digest = "" if t.scale.sharded else assert_replicas_equal(model)
    if not cfg.is_tiny:
        trainer.save_model(str(run_dir / "final"))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(run_dir / "final")
    model.eval()
    return model, [row for row in trainer.state.log_history if "loss" in row], digest


def lm_eval_scores(
    ev: EvalConfig, model, tokenizer, final: Path, sharded: bool
) -> dict[str, dict[str, float]]:
    """Main process: lm-eval on the trained model (``paperlab.evaluation.run_lm_eval``) for ``eval.lm_eval_tasks``;
    under ZeRO-3 / FSDP the weights in memory are shards, so the saved ``final`` model is loaded instead. The
    other ranks wait (the process group's timeout is ``train.scale.timeout_s``)."""
    from paperlab.evaluation import lm_eval_from_config

    if not ev.lm_eval_tasks or not is_main_process():
        return {}
    if sharded:
        model = load_for_inference(final)
    return lm_eval_from_config(model, tokenizer, ev)


def run(cfg: ExperimentConfig) -> dict[str, Any]:
    scale = cfg.train.scale
    distributed_state(scale.timeout_s)  # first: the process group with the raised timeout
    check_launch(scale, "profuser")
    # the user's corpus is read and checked before any model is loaded
    corpus = None if cfg.is_tiny else load_fusion_samples(cfg.data)
    out = results_dir("profuser", cfg.name)
    if cfg.is_tiny:
        world = build_world(cfg.world)
        samples = [Sample(e.uid, e.prompt, e.gt) for e in world.fusion]
        tokenizer, target_key = target_tokenizer(cfg, texts_for_tokenizer(world), out)
        reward = RuleReward(score)
    else:
        world = None
        tokenizer, target_key = target_tokenizer(cfg, [], out)
        samples = _fit(corpus, tokenizer, cfg)
        reward = ModelReward.load(cfg.fusion.reward, batch_size=cfg.fusion.reward_batch)
    target = ModelSide("target", None, tokenizer, chat=cfg.target.chat, fingerprint=target_key)
    modes = build_modes(cfg, world, target, samples, reward, out)
    main = is_main_process()
    rows_cache = JsonlCache(out / f"runs-{cfg.results_key()}.jsonl") if main else None
    done = main_decides(rows_cache.keys() if main else None)
    for method in cfg.methods:
        for seed in cfg.seeds:
            key = f"{method}/{seed}"
            if key in done:
                continue
            model, history, digest = train_method(method, seed, tokenizer, modes, cfg, out)
            record = {"key": key, "method": method, "seed": seed, "history": history, "digest": digest}
            if world is not None:
                record["accuracy"] = skill_accuracy(
                    model, tokenizer, world.evaluation, cfg.fusion.max_new_tokens
                )
                log.info(
                    "%s seed %d: %s", method, seed, {k: round(v, 1) for k, v in record["accuracy"].items()}
                )
            final = cfg.run_folder(out, method, seed) / "final"
            if cfg.eval.lm_eval_tasks:
                record["lm_eval"] = lm_eval_scores(cfg.eval, model, tokenizer, final, scale.sharded)
                barrier()
            if main:
                rows_cache.append(record)
    if world is None:
        return paper_report(cfg, out, modes, rows_cache) if main else {}
    acc_rows: dict[str, dict[str, float]] = {}
    for s_cfg in cfg.sources:  # every rank: the evaluation is sharded
        src = load_source(cfg, s_cfg, world, out)
        acc_rows[f"source {src.name}"] = skill_accuracy(
            src.model, src.tokenizer, world.evaluation, cfg.fusion.max_new_tokens
        )
    if not main:
        return {}
    gt = {
        s: 100 * statistics.fmean(e.gt_is_correct for e in world.fusion if e.skill == s)
        for s in world.evaluation
    }
    acc_rows["ground truth (fusion corpus)"] = {**gt, "mean": statistics.fmean(gt.values())}
    selection = selection_stats(cfg, world, modes.training_choice, modes.inference_choice, modes.rewards)
    return report(cfg, out, world, rows_cache, acc_rows, selection, modes.work)


def _fit(samples: list[Sample], tokenizer, cfg: ExperimentConfig) -> list[Sample]:
    """Leave out samples longer than ``data.max_tokens`` target tokens (FuseLLM trains on 2,048-token windows)."""
    kept = [
        s
        for s in samples
        if len(encode_prompt(tokenizer, s.prompt, cfg.target.chat))
        + len(tokenizer(s.response, add_special_tokens=False)["input_ids"])
        < cfg.data.max_tokens  # + EOS
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
