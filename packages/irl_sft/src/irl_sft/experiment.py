"""``tiny``: SFT, SPIN, IRFT (T stages) and RFT on :mod:`irl_sft.tiny`'s task, several seeds, metrics vs step.

Each run (method with its T, seed) trains from the same base model with the same demonstrations and step budget
(:func:`irl_sft.methods.train`); its metric rows (every ``steps // evals`` steps and at every stage end) are appended
to ``runs-<config hash>.jsonl`` in the results folder, so an interrupted sweep resumes at the next unfinished run
(a changed config starts a new file). Writes ``results.md`` (final metrics, mean ± sd over seeds, and ranking
accuracy at every evaluation step), ``metrics.json`` and one plot per metric against the step.

Also the dispatch of ``python -m irl_sft``: ``kind: tiny`` (this module) or ``kind: llm`` (:mod:`irl_sft.llm`, IRFT
on a causal LM with TRL, the ``llm`` block).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from irl_sft.methods import METHODS, MethodConfig, train
from irl_sft.tiny import TaskConfig, make_task
from paperlab.config import ConfigError, from_config, require
from paperlab.io import JsonlCache, derived_key
from paperlab.report import plot_lines, results_dir, write_results

log = logging.getLogger(__name__)
METRICS = {
    "ranking_acc": "held-out ranking accuracy, demo > base generation (%)",
    "demo_loglik_per_token": "held-out demonstration log-likelihood / token",
    "bigram_tv": "bigram total variation to style B (lower is better)",
}


def parse_run(run: str) -> tuple[str, int]:
    """``"IRFT-4"`` -> ``("IRFT", 4)``; ``"SFT"`` -> ``("SFT", 1)``. SPIN is IRFT with T = 1."""
    method, _, t = run.partition("-")
    if method not in METHODS or (t and not t.isdigit()) or (t and int(t) < 1):
        raise ConfigError(f"runs: {run!r} is not a run; expected METHOD or METHOD-T with METHOD in {METHODS}")
    return method, int(t) if t else 1


@dataclass
class TinyExperimentConfig:
    name: str = "tiny"
    task: TaskConfig = field(default_factory=TaskConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    runs: list[str] = field(default_factory=lambda: ["SFT", "SPIN", "IRFT-2", "IRFT-4", "RFT-4"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    evals: int = 4
    layers: int = 2
    hidden: int = 32
    workers: int = 2  # runs in parallel processes (one torch thread each); 1 = in this process
    progress: bool = True

    def __post_init__(self) -> None:
        require(bool(self.runs), "runs", self.runs, "at least one run")
        for run in self.runs:
            parse_run(run)
        require(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        require(self.evals >= 1, "evals", self.evals, ">= 1")
        require(self.workers >= 1, "workers", self.workers, ">= 1")


def _config_hash(cfg: TinyExperimentConfig) -> str:
    """The key of the sweep's ``runs-<key>.jsonl``: every setting that changes a run (each is recorded under its
    run and seed; ``task.seed`` is replaced by each seed; ``workers`` and ``progress`` only change how it runs)."""
    settings = asdict(cfg)
    settings["task"].pop("seed")
    return derived_key(settings, drop=("name", "runs", "seeds", "progress", "workers"))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _one_run(cfg: TinyExperimentConfig, seed: int, run: str) -> list[dict[str, Any]]:
    """One (run, seed): the task of that seed (base model cached on disk) and the method's metric rows."""
    torch.set_num_threads(1)  # a 2-layer, 32-wide model on 10-token sequences: threads only add overhead
    task = make_task(TaskConfig(**{**asdict(cfg.task), "seed": seed}), layers=cfg.layers, hidden=cfg.hidden)
    method, T = parse_run(run)
    return train(method, task, cfg.method, T=T, seed=seed, evals=cfg.evals)[1]


def run_tiny(cfg: TinyExperimentConfig) -> dict[str, Any]:
    out_dir = results_dir("irl_sft", cfg.name)
    runs = JsonlCache(out_dir / f"runs-{_config_hash(cfg)}.jsonl")
    todo = [(seed, run) for seed in cfg.seeds for run in cfg.runs if f"{run}|{seed}" not in runs]
    for seed in sorted(
        {seed for seed, _ in todo}
    ):  # pretrain (or load) each seed's base model once, up front
        with torch.random.fork_rng():
            make_task(TaskConfig(**{**asdict(cfg.task), "seed": seed}), layers=cfg.layers, hidden=cfg.hidden)
    bar = tqdm(
        total=len(cfg.seeds) * len(cfg.runs),
        initial=len(cfg.seeds) * len(cfg.runs) - len(todo),
        desc="irl_sft-tiny runs",
        disable=not cfg.progress,
    )

    def record(seed: int, run: str, history: list[dict[str, Any]]) -> None:
        runs.append({"key": f"{run}|{seed}", "run": run, "seed": seed, "history": history})
        bar.update(1)
        bar.set_postfix_str(f"{run} seed={seed}")

    if cfg.workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=context) as pool:
            futures = {pool.submit(_one_run, cfg, seed, run): (seed, run) for seed, run in todo}
            for future in as_completed(futures):
                record(*futures[future], future.result())
    else:
        for seed, run in todo:
            record(seed, run, _one_run(cfg, seed, run))
    bar.close()

    def rows_of(run: str) -> list[list[dict[str, Any]]]:
        return [runs.get(f"{run}|{s}")["history"] for s in cfg.seeds]

    final = {run: {m: _mean_sd([h[-1][m] for h in rows_of(run)]) for m in METRICS} for run in cfg.runs}
    start = rows_of(cfg.runs[0])
    rows = [
        {
            "run": "(base model)",
            **{m: f"{_mean_sd([h[0][m] for h in start])[0]:.3f}" for m in METRICS},
        }
    ]
    for run in cfg.runs:
        rows.append({"run": run, **{m: f"{final[run][m][0]:.3f} ± {final[run][m][1]:.3f}" for m in METRICS}})
    steps = sorted({r["step"] for run in cfg.runs for h in rows_of(run) for r in h})
    curves: dict[str, dict[str, list[float]]] = {m: {} for m in METRICS}
    for run in cfg.runs:
        for m in METRICS:
            at = [[r[m] for h in rows_of(run) for r in h if r["step"] == s] for s in steps]
            curves[m][run] = [statistics.fmean(v) if v else float("nan") for v in at]
    for m, label in METRICS.items():
        plot_lines(
            out_dir / f"{m}_vs_step.png",
            steps,
            curves[m],
            xlabel="gradient step (IRFT-T / RFT-T: a new stage every steps/T)",
            ylabel=label,
            title=f"irl_sft-tiny: {m} (mean of {len(cfg.seeds)} seeds)",
        )
    ranking_rows = [
        {
            "run": run,
            **{f"step {s}": f"{v:.1f}" for s, v in zip(steps, curves["ranking_acc"][run], strict=True)},
        }
        for run in cfg.runs
    ]
    metrics = {
        "config": asdict(cfg),
        "final": {run: {m: v[0] for m, v in final[run].items()} for run in cfg.runs},
        "final_sd": {run: {m: v[1] for m, v in final[run].items()} for run in cfg.runs},
        "curves": {"steps": steps, **curves},
    }
    from paperlab.report import markdown_table

    notes = (
        f"Mean ± sd over seeds {cfg.seeds}; {cfg.task.n_demo} demonstrations of style B (style {cfg.task.style}), "
        f"{cfg.method.steps} gradient steps per run, batch {cfg.method.batch}, lr {cfg.method.lr}, IRFT/SPIN beta "
        f"{cfg.method.beta}; RFT: bigram reward model ({cfg.method.reward_steps} Bradley-Terry steps per stage), "
        f"RLOO with KL coefficient {cfg.method.rl_beta}. Ranking accuracy: how often r = log pi - log pi_base "
        "ranks a held-out demonstration above a base-model generation (the paper's 'distinguish preferred from "
        "non-preferred', Sec. 5). The paper reports no such synthetic task.\n\n"
        "## Ranking accuracy (%) at each evaluation step (mean over seeds)\n\n" + markdown_table(ranking_rows)
    )
    write_results(out_dir, metrics, rows=rows, title="irl_sft-tiny: reward learning vs SFT", notes=notes)
    print((out_dir / "results.md").read_text())
    return metrics


def run(cfg_in: Any) -> dict[str, Any]:
    """Dispatch on ``kind``: ``tiny`` (the config's top level) or ``llm`` (the ``llm`` block, :mod:`irl_sft.llm`)."""
    from paperlab.config import _plain

    data = dict(_plain(cfg_in))
    kind = data.pop("kind", "tiny")
    llm_block = data.pop("llm", None)
    require(kind in ("tiny", "llm"), "kind", kind, "'tiny' or 'llm'")
    try:
        if kind == "llm":
            from irl_sft.llm import LLMConfig, run_llm

            llm_cfg = from_config(LLMConfig, llm_block or {}, where="llm")
        else:
            cfg = from_config(TinyExperimentConfig, data)
    except (TypeError, ValueError) as err:  # config errors only; the runs raise their own
        raise ConfigError(str(err)) from err
    if kind == "llm":
        return run_llm(llm_cfg)
    return run_tiny(cfg)
