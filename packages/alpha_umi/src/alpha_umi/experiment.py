"""Experiments: ``tiny`` (the synthetic tool world, a tiny Llama built locally, CPU) and ``paper`` (LLaMA-2 backbones
on the ToolBench data of the official repo, GPUs). Both run the same pipeline:

1. role data from the training trajectories (:mod:`alpha_umi.data`);
2. the systems: the single-LLM baseline, alpha-UMi with GLPFT, and the "stage-2 only" ablation (roles trained from
   the base model), each of the same model size (:mod:`alpha_umi.train`);
3. static evaluation on the test trajectories (Plan ACC, Action EM, Hallucination, Argument F1, R-L;
   :mod:`alpha_umi.metrics`), and -- in the tiny world -- live task success with the real tools
   (:mod:`alpha_umi.runtime`), one JSON trace per task.

Results go to ``results/alpha_umi/<name>/``: ``metrics.json``, ``results.md`` (beside the paper's Table 1),
``static_metrics.png``, ``loss_curves.png``, the traces. Trained models are reused on rerun (``done.json``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alpha_umi.data import load_trajectories, role_datasets, training_text
from alpha_umi.train import TrainConfig, glpft, load_done, single_llm, stage2_only
from paperlab.config import require
from paperlab.report import plot_lines, results_dir, write_results

log = logging.getLogger(__name__)

SYSTEMS = ("single-LLM", "alpha-UMi (GLPFT)", "stage-2 only")

# The paper's Table 1 (ToolBench, out-of-domain test set; Plan ACC / Act. EM / Hallu. / Arg. F1 / R-L), as shown in
# the official repository's README (assets/result_static.png).
PAPER_TABLE1_OOD = {
    "7B single-LLM": (84.61, 56.54, 2.26, 50.09, 47.99),
    "7B single-LLM multi-task": (86.55, 56.89, 2.77, 49.50, 32.58),
    "7B multi-LLM one-stage": (88.42, 53.40, 2.52, 45.79, 46.39),
    "7B alpha-UMi (w/ reuse)": (89.72, 60.47, 0.45, 53.60, 46.26),
    "13B single-LLM": (86.74, 60.04, 2.03, 52.94, 48.46),
    "13B alpha-UMi (w/ reuse)": (88.73, 64.21, 0.24, 57.38, 42.50),
}


@dataclass
class ModelConfig:
    base: str = (
        "tiny"  # "tiny": a tiny Llama + BPE tokenizer built from the training texts; else hub name / dir
    )
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    vocab_size: int = 2048


@dataclass
class DataConfig:
    kind: str = "world"  # world (synthetic tool world) | toolbench (trajectory files)
    train_tasks: int = 150
    test_tasks: int = 40
    live_tasks: int = 30
    give_up_rate: float = 0.1
    train_path: str = ""  # toolbench: raw_data_stage_2.json-style file(s), comma-separated
    test_path: str = ""  # toolbench: e.g. test/out_of_domain.json
    test_limit: int = 0  # 0: every test trajectory

    def __post_init__(self) -> None:
        require(self.kind in ("world", "toolbench"), "data.kind", self.kind, "world or toolbench")
        if self.kind == "toolbench":
            require(self.train_path != "", "data.train_path", self.train_path, "a trajectory file")
            require(self.test_path != "", "data.test_path", self.test_path, "a trajectory file")


@dataclass
class ExperimentConfig:
    name: str = "tiny"
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    max_new_tokens: int = 64
    max_steps: int = 6  # live runtime: planner turns per task
    generation_batch: int = 16
    # "": generate locally; else an OpenAI-compatible server (e.g. vLLM) serving the trained models, each under the
    # name "<system slug>-<role>" (single-llm-backbone, alpha-umi-planner, ...)
    server: str = ""
    progress: bool = True

    def __post_init__(self) -> None:
        for s in self.systems:
            require(s in SYSTEMS, "systems", s, f"one of {list(SYSTEMS)}")


def _data(cfg: ExperimentConfig) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
    """(train trajectories, test trajectories, live tasks)."""
    if cfg.data.kind == "world":
        from alpha_umi.world import make_split

        train = [t for _, t in make_split(cfg.data.train_tasks, seed=0, give_up_rate=cfg.data.give_up_rate)]
        test = [t for _, t in make_split(cfg.data.test_tasks, seed=1, give_up_rate=cfg.data.give_up_rate)]
        live = [
            task for task, _ in make_split(cfg.data.live_tasks, seed=2, give_up_rate=cfg.data.give_up_rate)
        ]
        return train, test, live
    train = [t for p in cfg.data.train_path.split(",") for t in load_trajectories(p.strip())]
    test = load_trajectories(cfg.data.test_path)
    return train, test[: cfg.data.test_limit or None], []


def _base(cfg: ExperimentConfig, data: dict[str, list[dict[str, Any]]], out: Path) -> Path:
    if cfg.model.base != "tiny":
        return Path(cfg.model.base) if Path(cfg.model.base).exists() else cfg.model.base  # type: ignore[return-value]
    base = out / "base"
    if not (base / "config.json").is_file():
        from paperlab.models import tiny_causal_lm, train_tiny_tokenizer

        texts = [training_text(s, "")["prompt"] + s["target"] for r in data for s in data[r]]
        tok = train_tiny_tokenizer(texts, vocab_size=cfg.model.vocab_size)
        model = tiny_causal_lm(
            tokenizer=tok,
            layers=cfg.model.layers,
            hidden=cfg.model.hidden,
            heads=cfg.model.heads,
            max_position=cfg.train.max_length,
            seed=cfg.train.seed,
        )
        model.save_pretrained(base)
        tok.save_pretrained(base)
    return base


def train_system(
    system: str, base: Path | str, data: dict[str, list[dict[str, Any]]], cfg: TrainConfig, out: Path
) -> dict[str, Path]:
    if system == "single-LLM":
        return {"backbone": single_llm(base, data, cfg, out)}
    if system == "alpha-UMi (GLPFT)":
        return glpft(base, data, cfg, out)
    return stage2_only(base, data, cfg, out)


def evaluate_system(
    system: str,
    models: dict[str, Path],
    test: list[Any],
    live: list[dict[str, Any]],
    cfg: ExperimentConfig,
    out: Path,
) -> dict[str, Any]:
    from alpha_umi.infer import Generator, ServerGenerator, predict_multi, predict_single
    from alpha_umi.metrics import static_metrics

    slug = system.split(" ")[0].lower()
    roles = [r for r in models if r != "backbone" or system == "single-LLM"]
    if cfg.server:
        gens: dict[str, Any] = {
            r: ServerGenerator(cfg.server, f"{slug}-{r}", cfg.max_new_tokens) for r in roles
        }
    else:
        gens = {
            r: Generator(models[r], cfg.max_new_tokens, cfg.train.max_length, cfg.generation_batch)
            for r in roles
        }
    if system == "single-LLM":
        steps = predict_single(test, gens["backbone"])
    else:
        steps = predict_multi(
            test, gens["planner"], gens["caller"], gens["summarizer"], progress=cfg.progress
        )
    result: dict[str, Any] = static_metrics(steps)
    if live:
        from tqdm.auto import tqdm

        from alpha_umi.runtime import Agent
        from alpha_umi.world import instruction, registry, task_success

        if system == "single-LLM":
            agent = Agent(registry(), backbone=gens["backbone"].one, max_steps=cfg.max_steps)
        else:
            agent = Agent(
                registry(),
                planner=gens["planner"].one,
                caller=gens["caller"].one,
                summarizer=gens["summarizer"].one,
                max_steps=cfg.max_steps,
            )
        wins, calls, hallu = 0, 0, 0
        for k, task in enumerate(tqdm(live, desc=f"live {system}", disable=not cfg.progress)):
            trace = agent.run(instruction(task))
            trace.save(out / "traces" / slug / f"task-{k:03d}.json")
            wins += task_success(task, trace.status, trace.answer)
            calls += trace.calls
            hallu += trace.hallucinations
        result.update(
            success=100.0 * wins / len(live), calls_per_task=calls / len(live), hallucinated_calls=hallu
        )
    return result


def run(cfg: ExperimentConfig, out_dir: Path | None = None) -> dict[str, Any]:
    from paperlab.seed import seed_everything

    seed_everything(cfg.train.seed)
    out = Path(out_dir) if out_dir is not None else results_dir("alpha_umi", cfg.name)
    train, test, live = _data(cfg)
    data = role_datasets(train)
    log.info("role data: %s", {k: len(v) for k, v in data.items()})
    base = _base(cfg, data, out)
    results, losses = {}, {}
    for system in cfg.systems:
        models = train_system(system, base, data, cfg.train, out / "models")
        results[system] = evaluate_system(system, models, test, live, cfg, out)
        for role, path in models.items():
            losses[f"{system}: {role}"] = load_done(path.parent)["losses"]
        log.info("%s: %s", system, results[system])
    metrics = {
        "config": asdict(cfg),
        "role_samples": {k: len(v) for k, v in data.items()},
        "results": results,
        "paper_table1_ood": PAPER_TABLE1_OOD,
    }
    keys = ["plan_acc", "action_em", "hallucination", "arg_f1", "rouge_l", "success"]
    rows = [{"system": s, **{k: results[s].get(k, "") for k in keys}} for s in results]
    rows += [
        {"system": f"paper: {name}", **dict(zip(keys, vals, strict=False)), "success": ""}
        for name, vals in PAPER_TABLE1_OOD.items()
    ]
    plot_lines(
        out / "loss_curves.png",
        list(range(max(len(v) for v in losses.values()))),
        {k: v + [float("nan")] * (max(len(x) for x in losses.values()) - len(v)) for k, v in losses.items()},
        xlabel="logging step",
        ylabel="training loss",
        title="alpha_umi: SFT losses per model",
    )
    write_results(
        out,
        metrics,
        rows=rows,
        title=f"alpha_umi {cfg.name}: static metrics (%) and live success",
        notes=(
            "Ours: the test trajectories of this run. Paper rows: Table 1, ToolBench out-of-domain, LLaMA-2 backbones "
            "(not comparable in data or scale; listed for the metric ranges)."
        ),
    )
    print((out / "results.md").read_text())
    return metrics
