"""What ``profuser-tiny`` / ``-study`` report: per-skill held-out accuracy, the two modes' choices of source, the
results table beside the paper's claim and its plots; at paper scale the selection shares; at both, the lm-eval
numbers of every trained model when ``eval.lm_eval_tasks`` is set.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from paperlab.io import JsonlCache, atomic_write_json
from paperlab.report import plot_bars, plot_lines, write_results
from paperlab.scale import map_sharded
from profuser.generate import greedy_responses
from profuser.world import score


def skill_accuracy(
    model, tokenizer, evaluation: dict, max_new_tokens: int, chat: bool = False
) -> dict[str, float]:
    """Per skill, % of held-out prompts answered right (greedy), and their mean. Under a launch the prompts are
    split over the ranks (:func:`paperlab.scale.map_sharded`) and every rank gets the same numbers."""
    acc = {}
    for skill, examples in evaluation.items():
        answers = map_sharded(
            lambda part: greedy_responses(model, tokenizer, part, max_new_tokens=max_new_tokens, chat=chat),
            [e.prompt for e in examples],
        )
        acc[skill] = 100 * statistics.fmean(
            score(e.prompt, a) for e, a in zip(examples, answers, strict=True)
        )
    acc["mean"] = statistics.fmean(acc[s] for s in evaluation)
    return acc


def selection_stats(cfg, world, train_choice, inf_choice, rewards) -> dict[str, Any]:
    """On the fusion samples of the specialist skills: how often each mode picks the skill's specialist (overall and
    where the ground truth is wrong), and how often the two modes agree on all samples (cf. the paper's 68 % vs 45 %,
    Sec. 1)."""
    names = [s.name for s in cfg.sources]
    specialist = {s.skill: i for i, s in enumerate(cfg.sources)}
    spec = np.array([e.skill in specialist for e in world.fusion])
    wrong = np.array([not e.gt_is_correct for e in world.fusion]) & spec
    target = np.array([specialist.get(e.skill, -1) for e in world.fusion])
    t_hit, i_hit = np.asarray(train_choice) == target, np.asarray(inf_choice) == target

    def pct(hit: np.ndarray, where: np.ndarray) -> float | None:
        return 100 * float(hit[where].mean()) if where.any() else None

    return {
        "sources": names,
        "training_mode_picks_specialist_pct": pct(t_hit, spec),
        "inference_mode_picks_specialist_pct": pct(i_hit, spec),
        "training_mode_picks_specialist_on_wrong_gt_pct": pct(t_hit, wrong),
        "inference_mode_picks_specialist_on_wrong_gt_pct": pct(i_hit, wrong),
        "modes_agree_pct": 100 * float((np.asarray(train_choice) == np.asarray(inf_choice)).mean()),
        "inference_best_reward_mean": float(rewards.max(axis=0).mean()),
        "training_mode_share": {
            n: 100 * float((np.asarray(train_choice) == i).mean()) for i, n in enumerate(names)
        },
        "inference_mode_share": {
            n: 100 * float((np.asarray(inf_choice) == i).mean()) for i, n in enumerate(names)
        },
    }


def report(cfg, out: Path, world, rows_cache: JsonlCache, acc_rows, selection, work=()) -> dict[str, Any]:
    skills = list(world.evaluation)
    cols = [*skills, "mean"]
    per_method: dict[str, dict[str, list[float]]] = {}
    curves: dict[str, list[float]] = {}
    steps: list[int] = []
    for rec in rows_cache:
        if rec["method"] not in cfg.methods or rec["seed"] not in cfg.seeds:
            continue
        per_method.setdefault(rec["method"], {c: [] for c in cols})
        for c in cols:
            per_method[rec["method"]][c].append(rec["accuracy"][c])
        if rec["seed"] == cfg.seeds[0]:
            curves[rec["method"]] = [h["loss_clm"] for h in rec["history"] if "loss_clm" in h]
            steps = [h["step"] for h in rec["history"] if "loss_clm" in h]
    rows = [{"model": name, **{c: v[c] for c in cols}} for name, v in acc_rows.items()]
    summary: dict[str, dict[str, float]] = {}
    for method in cfg.methods:
        if method not in per_method:
            continue
        vals = per_method[method]
        summary[method] = {c: statistics.fmean(vals[c]) for c in cols}
        sd = {c: statistics.stdev(vals[c]) if len(vals[c]) > 1 else 0.0 for c in cols}
        rows.append(
            {"model": f"target: {method}", **{c: f"{summary[method][c]:.1f} ± {sd[c]:.1f}" for c in cols}}
        )
    plot_bars(
        out / "accuracy.png",
        cols,
        {m: [summary[m][c] for c in cols] for m in summary},
        ylabel="accuracy (%)",
        title=f"profuser-{cfg.name}: held-out accuracy per skill",
    )
    if curves:
        plot_lines(
            out / "loss_curves.png",
            steps,
            curves,
            xlabel="step",
            ylabel="CLM loss on the batch's responses",
            title="training loss (first seed)",
            markers=False,
        )
    metrics = {
        "config": asdict(cfg),
        "summary": summary,
        "per_seed": list(rows_cache),
        "sources_and_gt": acc_rows,
        "selection": selection,
        "work_per_rank": list(work),
        "lm_eval": {rec["key"]: rec["lm_eval"] for rec in rows_cache if rec.get("lm_eval")},
    }
    notes = _notes(cfg, selection, summary)
    write_results(
        out,
        metrics,
        rows=rows,
        columns=["model", *cols],
        title=f"profuser-{cfg.name}",
        notes=notes,
        floatfmt=".1f",
    )
    atomic_write_json(out / "selection.json", selection)
    print((out / "results.md").read_text(), flush=True)
    return metrics


PAPER_NOTE = (
    "Paper (Shi et al. 2024, abstract and Sec. 1): fusing vicuna-7b-v1.5, Llama-2-7b-chat and mpt-7b-8k-chat, ProFuser "
    "beats FuseLLM (training mode only) in knowledge, reasoning and safety, +1.65 % on average over six benchmarks; "
    "Vicuna beats Llama-2-chat on 68 % of samples in training mode but on 45 % in inference mode."
)


def _notes(cfg, selection, summary) -> str:
    lines = [
        f"Held-out accuracy (%) per skill, greedy answers, mean ± sd over seeds {cfg.seeds}; every method trains the "
        f"same fresh target for {cfg.train.steps} steps of {cfg.train.batch} (lam = {cfg.fusion.lam}, k = "
        f"{cfg.fusion.k}; ProFuser schedule {cfg.fusion.schedule.kind}, switch {cfg.fusion.schedule.switch}).",
        "",
        f"Advantage selection on the fusion samples of the specialist skills: training mode (MinCE) picks the skill's "
        f"specialist {selection['training_mode_picks_specialist_pct']:.1f} % of the time "
        f"({selection['training_mode_picks_specialist_on_wrong_gt_pct']:.1f} % where the ground truth is wrong), "
        f"inference mode (reward) {selection['inference_mode_picks_specialist_pct']:.1f} % "
        f"({selection['inference_mode_picks_specialist_on_wrong_gt_pct']:.1f} %); over all samples the modes agree "
        f"on {selection['modes_agree_pct']:.1f} %.",
        "",
        PAPER_NOTE,
    ]
    if {"ProFuser", "FuseLLM", "SFT"} <= set(summary):
        p, f, s = (summary[m]["mean"] for m in ("ProFuser", "FuseLLM", "SFT"))
        lines += [
            "",
            f"Mean accuracy: ProFuser {p:.1f} vs FuseLLM {f:.1f} ({p - f:+.1f}) vs SFT {s:.1f} ({p - s:+.1f}).",
        ]
    return "\n".join(lines)


def paper_report(cfg, out: Path, modes, rows_cache: JsonlCache) -> dict[str, Any]:
    """Paper scale: selection statistics, every run's lm-eval numbers (``eval.lm_eval_tasks``) and where its model
    is saved."""
    names = [s.name for s in cfg.sources]
    selection = {
        "training_mode_share": {
            n: 100 * float((modes.training_choice == i).mean()) for i, n in enumerate(names)
        },
        "inference_mode_share": {
            n: 100 * float((modes.inference_choice == i).mean()) for i, n in enumerate(names)
        },
        "modes_agree_pct": 100 * float((modes.training_choice == modes.inference_choice).mean()),
    }
    runs = {
        rec["key"]: {
            "model": str(cfg.run_folder(out, rec["method"], rec["seed"]) / "final"),
            "lm_eval": rec.get("lm_eval", {}),
        }
        for rec in rows_cache
        if rec["method"] in cfg.methods and rec["seed"] in cfg.seeds
    }
    metrics = {"config": asdict(cfg), "selection": selection, "runs": runs, "work_per_rank": modes.work}
    atomic_write_json(out / "metrics.json", metrics)
    print(json.dumps({"selection": selection, "runs": runs}, indent=2), flush=True)
    return metrics
