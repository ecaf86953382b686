"""``oracle``: oracle reward of every method vs the number of preference pairs, on :mod:`aihf.oracle`'s task.

For each seed: draw the task (hidden reward, demonstrations, a pool of ``max(n_prefs)`` labelled pairs from the
initial policy); for each ``n_pref`` and each method train from the same initial policy (:func:`aihf.methods.train`)
and score its samples with the oracle reward. Also reported: the initial policy, the demonstrator and the optimum.
Finished runs are appended to ``runs.jsonl`` in the results folder, so an interrupted sweep resumes where it stopped
(a changed config starts a new file: the file name carries the config's hash).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from aihf.methods import METHODS, MethodConfig, optimal_reward, oracle_reward, train
from aihf.oracle import BigramPolicy, CausalLMPolicy, TaskConfig, make_task
from paperlab.config import ConfigError, from_config, require
from paperlab.io import JsonlCache, derived_key
from paperlab.report import plot_lines, results_dir, write_results

log = logging.getLogger(__name__)
POLICIES = ("bigram", "tiny_llama")


@dataclass
class TinyLMConfig:
    layers: int = 2
    hidden: int = 32
    heads: int = 2
    seed: int = 0


@dataclass
class OracleExperimentConfig:
    name: str = "oracle"
    task: TaskConfig = field(default_factory=TaskConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    policy: str = "bigram"  # "bigram" (tabular LM) or "tiny_llama" (a Llama built locally, see ``lm``)
    lm: TinyLMConfig = field(default_factory=TinyLMConfig)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    n_prefs: list[int] = field(default_factory=lambda: [10, 30, 100, 300])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    eval_samples: int = 4000
    progress: bool = True

    def __post_init__(self) -> None:
        require(self.policy in POLICIES, "policy", self.policy, f"one of {POLICIES}")
        for m in self.methods:
            require(m in METHODS, "methods", m, f"a subset of {list(METHODS)}")
        require(bool(self.methods), "methods", self.methods, "at least one method")
        require(
            bool(self.n_prefs) and min(self.n_prefs) >= 1, "n_prefs", self.n_prefs, "a list of counts >= 1"
        )
        require(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        require(self.eval_samples >= 100, "eval_samples", self.eval_samples, ">= 100")


def policy_factory(cfg: OracleExperimentConfig):
    """A function returning a fresh copy of the initial policy (the same one every call)."""
    task = cfg.task
    if cfg.policy == "bigram":
        return lambda: BigramPolicy(task.vocab, task.length)
    from paperlab.models import tiny_causal_lm

    def make() -> CausalLMPolicy:
        model = tiny_causal_lm(
            task.vocab + 1,
            layers=cfg.lm.layers,
            hidden=cfg.lm.hidden,
            heads=cfg.lm.heads,
            max_position=task.length + 2,
            seed=cfg.lm.seed,
        )
        return CausalLMPolicy(model.train(), task.vocab, task.length)

    return make


def _config_hash(cfg: OracleExperimentConfig) -> str:
    """The key of the sweep's ``runs-<key>.jsonl``: every setting that changes a run's score (each run is recorded
    under its method, n_pref and seed; the preference pool is nested, so ``max(n_prefs)`` changes none of them)."""
    return derived_key(cfg, drop=("name", "methods", "n_prefs", "seeds", "progress"))


def run_oracle(cfg: OracleExperimentConfig) -> dict[str, Any]:
    if cfg.policy == "bigram":
        # tensors of a few dozen numbers: threads only add synchronisation, and stall badly on shared cores
        torch.set_num_threads(1)
    out_dir = results_dir("aihf", cfg.name)
    runs = JsonlCache(out_dir / f"runs-{_config_hash(cfg)}.jsonl")
    make_policy = policy_factory(cfg)
    jobs = [(s, n, m) for s in cfg.seeds for n in cfg.n_prefs for m in cfg.methods]
    refs: dict[str, list[float]] = {"initial policy": [], "demonstrator": [], "optimal": []}
    bar = tqdm(total=len(jobs), desc="aihf-oracle runs", disable=not cfg.progress)
    for seed in cfg.seeds:
        task = make_task(cfg.task, seed, max(cfg.n_prefs), make_policy())
        refs["initial policy"].append(oracle_reward(make_policy(), task, cfg.eval_samples))
        expert = BigramPolicy(cfg.task.vocab, cfg.task.length, task.expert_logits())
        refs["demonstrator"].append(oracle_reward(expert, task, cfg.eval_samples))
        refs["optimal"].append(optimal_reward(task))
        for n_pref in cfg.n_prefs:
            for method in cfg.methods:
                key = f"{method}|{n_pref}|{seed}"
                if key not in runs:
                    if method == "SFT" and f"SFT|{cfg.n_prefs[0]}|{seed}" in runs:  # SFT ignores preferences
                        score = runs.get(f"SFT|{cfg.n_prefs[0]}|{seed}")["oracle_reward"]
                    else:
                        policy = train(method, make_policy, task, n_pref, cfg.method, seed)
                        score = oracle_reward(policy, task, cfg.eval_samples)
                    runs.append(
                        {"key": key, "method": method, "n_pref": n_pref, "seed": seed, "oracle_reward": score}
                    )
                bar.update(1)
                bar.set_postfix_str(f"{method} n_pref={n_pref} seed={seed}")
    bar.close()

    def cell(method: str, n_pref: int) -> list[float]:
        return [runs.get(f"{method}|{n_pref}|{s}")["oracle_reward"] for s in cfg.seeds]

    mean = {m: [statistics.fmean(cell(m, n)) for n in cfg.n_prefs] for m in cfg.methods}
    sd = {
        m: [statistics.stdev(cell(m, n)) if len(cfg.seeds) > 1 else 0.0 for n in cfg.n_prefs]
        for m in cfg.methods
    }
    ref_mean = {k: statistics.fmean(v) for k, v in refs.items()}
    rows = []
    for m in cfg.methods:
        row: dict[str, Any] = {"method": m}
        for i, n in enumerate(cfg.n_prefs):
            row[f"n_pref={n}"] = f"{mean[m][i]:.3f} ± {sd[m][i]:.3f}"
        rows.append(row)
    for k, v in ref_mean.items():
        rows.append({"method": f"({k})", **{f"n_pref={n}": f"{v:.3f}" for n in cfg.n_prefs}})
    series = {m: mean[m] for m in cfg.methods}
    series.update({f"({k})": [v] * len(cfg.n_prefs) for k, v in ref_mean.items() if k != "initial policy"})
    plot_lines(
        out_dir / "oracle_reward_vs_n_pref.png",
        cfg.n_prefs,
        series,
        xlabel="preference pairs",
        ylabel="oracle reward",
        title=f"AIHF vs baselines ({cfg.policy} policy, {cfg.task.n_demo} demonstrations, {len(cfg.seeds)} seeds)",
        logx=True,
    )
    metrics = {
        "config": asdict(cfg),
        "oracle_reward": {m: dict(zip(map(str, cfg.n_prefs), mean[m], strict=True)) for m in cfg.methods},
        "oracle_reward_sd": {m: dict(zip(map(str, cfg.n_prefs), sd[m], strict=True)) for m in cfg.methods},
        "references": ref_mean,
    }
    notes = (
        f"Oracle reward (mean ± sd over seeds {cfg.seeds}) of {cfg.task.n_demo} demonstrations (demonstrator "
        f"temperature {cfg.task.tau_expert}) plus n_pref preference pairs; policy `{cfg.policy}`, "
        f"{cfg.method.steps} steps per stage, beta {cfg.method.beta}, AIHF w_demo {cfg.method.w_demo} "
        f"({cfg.method.demo_form}), w_pref {cfg.method.w_pref}. The paper reports no such synthetic task; its claim "
        "(Sec. 5) is the shape: with scarce preferences AIHF beats SFT and DPO."
    )
    write_results(
        out_dir, metrics, rows=rows, title="aihf-oracle: oracle reward vs preference pairs", notes=notes
    )
    print((out_dir / "results.md").read_text())
    return metrics


def run(cfg_in: Any) -> dict[str, Any]:
    """Dispatch on ``kind``: ``oracle`` (the config's top level), ``align`` (the ``align`` block: AIHF on an LLM,
    :mod:`aihf.align`) or ``mujoco`` (the ``mujoco`` block, :mod:`aihf.mujoco`)."""
    from paperlab.config import _plain

    data = dict(_plain(cfg_in))
    kind = data.pop("kind", "oracle")
    align_block = data.pop("align", None)
    mujoco_block = data.pop("mujoco", None)
    require(kind in ("oracle", "align", "mujoco"), "kind", kind, "'oracle', 'align' or 'mujoco'")
    try:
        if kind == "align":
            from aihf.align import AlignConfig, run_align

            align_cfg = from_config(AlignConfig, align_block or {}, where="align")
        elif kind == "mujoco":
            from aihf.mujoco import MujocoConfig, run_mujoco

            mujoco_cfg = from_config(MujocoConfig, mujoco_block or {}, where="mujoco")
        else:
            cfg = from_config(OracleExperimentConfig, data)
    except (TypeError, ValueError) as err:  # config errors only; the runs raise their own
        raise ConfigError(str(err)) from err
    if kind == "align":
        return run_align(align_cfg)
    if kind == "mujoco":
        return run_mujoco(mujoco_cfg)
    return run_oracle(cfg)
