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
from paperlab.io import atomic_write_json, derived_key, read_json
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
class EvalConfig:
    """lm-eval (``lm_eval``) on every trained model when ``lm_eval_tasks`` is set (the harness's task names, or
    tasks of one's own in ``lm_eval_include_path``); ``lm_eval_limit`` examples per task (0: all)."""

    lm_eval_tasks: list[str] = field(default_factory=list)
    lm_eval_include_path: str = ""
    lm_eval_limit: int = 0
    lm_eval_batch_size: int = 8
    lm_eval_num_fewshot: int = -1  # -1: the task's own default

    def __post_init__(self) -> None:
        require(self.lm_eval_limit >= 0, "eval.lm_eval_limit", self.lm_eval_limit, ">= 0")
        require(self.lm_eval_batch_size >= 1, "eval.lm_eval_batch_size", self.lm_eval_batch_size, ">= 1")


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
    server_concurrency: int = 8  # requests in flight
    server_timeout_s: float = 120.0  # per request
    server_retries: int = 4  # per request, exponential backoff from 1 s
    progress: bool = True
    eval: EvalConfig = field(default_factory=EvalConfig)

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
    train = [
        t for p in cfg.data.train_path.split(",") for t in load_trajectories(p.strip(), "data.train_path")
    ]
    test = load_trajectories(cfg.data.test_path, "data.test_path")
    return train, test[: cfg.data.test_limit or None], []


def _base(cfg: ExperimentConfig, data: dict[str, list[dict[str, Any]]], out: Path) -> Path:
    if cfg.model.base != "tiny":
        return Path(cfg.model.base) if Path(cfg.model.base).exists() else cfg.model.base  # type: ignore[return-value]
    from paperlab.scale import distributed_state

    base = out / "base"
    key = _base_key(cfg, data)
    stamp = base / "key.json"
    with distributed_state().main_process_first():  # the main process builds it, the others then find it
        if not (stamp.is_file() and read_json(stamp).get("key") == key and (base / "config.json").is_file()):
            _build_tiny_base(cfg, data, base)
            atomic_write_json(stamp, {"key": key})
    return base


def _base_key(cfg: ExperimentConfig, data: dict[str, list[dict[str, Any]]]) -> str:
    """What the tiny base is derived from: its shape, tokenizer size, length, seed and the texts its tokenizer is
    trained on (:func:`paperlab.io.derived_key`)."""
    texts = [training_text(s, "")["prompt"] + s["target"] for r in data for s in data[r]]
    return derived_key(
        {
            "model": asdict(cfg.model),
            "max_length": cfg.train.max_length,
            "seed": cfg.train.seed,
            "texts": texts,
        }
    )


def _build_tiny_base(cfg: ExperimentConfig, data: dict[str, list[dict[str, Any]]], base: Path) -> None:
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


def train_system(
    system: str, base: Path | str, data: dict[str, list[dict[str, Any]]], cfg: TrainConfig, out: Path
) -> dict[str, Path]:
    if system == "single-LLM":
        return {"backbone": single_llm(base, data, cfg, out)}
    if system == "alpha-UMi (GLPFT)":
        return glpft(base, data, cfg, out)
    return stage2_only(base, data, cfg, out)


def _generators(system: str, models: dict[str, Path], cfg: ExperimentConfig, out: Path) -> dict[str, Any]:
    from alpha_umi.infer import Generator, ServerGenerator
    from paperlab.scale import rank, world_size

    slug = system.split(" ")[0].lower()
    roles = [r for r in models if r != "backbone" or system == "single-LLM"]
    if not cfg.server:
        return {
            r: Generator(models[r], cfg.max_new_tokens, cfg.train.max_length, cfg.generation_batch)
            for r in roles
        }
    suffix = f".rank{rank()}" if world_size() > 1 else ""  # one cache file per process
    return {
        r: ServerGenerator(
            cfg.server,
            f"{slug}-{r}",
            cfg.max_new_tokens,
            timeout_s=cfg.server_timeout_s,
            concurrency=cfg.server_concurrency,
            retries=cfg.server_retries,
            # keyed by the trained model it stands for: a retrained model is asked again
            cache_path=out
            / "server_cache"
            / f"{slug}-{r}-{load_done(models[r].parent)['key']}{suffix}.jsonl",
        )
        for r in roles
    }


def evaluate_system(
    system: str,
    models: dict[str, Path],
    test: list[Any],
    live: list[dict[str, Any]],
    cfg: ExperimentConfig,
    out: Path,
) -> dict[str, Any]:
    """Static metrics on ``test`` and live success on ``live``. Generation is sharded over the ranks (static
    prompts by :class:`alpha_umi.infer.Sharded`, live tasks whole per rank), every rank gets every result, and
    the main process alone writes the traces."""
    from accelerate.utils import gather_object

    from alpha_umi.infer import Sharded, predict_multi, predict_single
    from alpha_umi.metrics import static_metrics
    from paperlab.scale import is_main_process, map_sharded, world_size

    slug = system.split(" ")[0].lower()
    gens = _generators(system, models, cfg, out)
    sharded = {r: Sharded(g, release=True) for r, g in gens.items()}  # one role model resident at a time
    if system == "single-LLM":
        steps = predict_single(test, sharded["backbone"])
    else:
        steps = predict_multi(
            test, sharded["planner"], sharded["caller"], sharded["summarizer"], progress=cfg.progress
        )
    result: dict[str, Any] = static_metrics(steps)
    local = sum(s.local for s in sharded.values())
    result["prompts_per_rank"] = gather_object([local]) if world_size() > 1 else [local]
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

        def run_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
            done = []
            for task in tqdm(tasks, desc=f"live {system}", disable=not cfg.progress):
                trace = agent.run(instruction(task))
                done.append(
                    {"trace": asdict(trace), "success": task_success(task, trace.status, trace.answer)}
                )
            return done

        runs = map_sharded(run_tasks, live)
        if is_main_process():
            for k, r in enumerate(runs):
                atomic_write_json(out / "traces" / slug / f"task-{k:03d}.json", r["trace"])
        result.update(
            success=100.0 * sum(r["success"] for r in runs) / len(live),
            calls_per_task=sum(r["trace"]["calls"] for r in runs) / len(live),
            hallucinated_calls=sum(r["trace"]["hallucinations"] for r in runs),
        )
    if cfg.server:  # answered "" and scored as wrong; counted here so that a flaky server is visible
        result["failed_requests"] = {r: g.failures for r, g in gens.items()}
    return result


def lm_eval_scores(models: dict[str, Path], ev: EvalConfig) -> dict[str, dict[str, dict[str, float]]]:
    """``{role: {task: {metric: value}}}``: :func:`paperlab.evaluation.run_lm_eval` on each trained model of a
    system (its model loaded on this rank's device), on the main process only (the others get ``{}``); the
    process group's raised timeout covers the wait."""
    from alpha_umi.tokens import load_tokenizer
    from paperlab.evaluation import lm_eval_from_config
    from paperlab.scale import distributed_state, is_main_process, load_for_inference

    scores: dict[str, dict[str, dict[str, float]]] = {}
    if ev.lm_eval_tasks and is_main_process():
        for role, path in models.items():
            scores[role] = lm_eval_from_config(load_for_inference(path), load_tokenizer(path), ev)
    if ev.lm_eval_tasks:
        distributed_state().wait_for_everyone()
    return scores


def run(cfg: ExperimentConfig, out_dir: Path | None = None) -> dict[str, Any]:
    """The experiment, under the launch ``cfg.train.scale`` names (checked first); the main process writes."""
    from paperlab.scale import check_launch, distributed_state, is_main_process
    from paperlab.seed import seed_everything

    distributed_state(cfg.train.scale.timeout_s)  # before anything starts the process group
    check_launch(cfg.train.scale, "alpha_umi")
    seed_everything(cfg.train.seed)
    # the user's files are read and checked before anything is built or written
    train, test, live = _data(cfg)
    out = Path(out_dir) if out_dir is not None else results_dir("alpha_umi", cfg.name)
    data = role_datasets(train)
    log.info("role data: %s", {k: len(v) for k, v in data.items()})
    base = _base(cfg, data, out)
    results, losses = {}, {}
    for system in cfg.systems:
        models = train_system(system, base, data, cfg.train, out / "models")
        results[system] = evaluate_system(system, models, test, live, cfg, out)
        lm = lm_eval_scores(models, cfg.eval)
        if lm:
            results[system]["lm_eval"] = lm
        for role, path in models.items():
            losses[f"{system}: {role}"] = load_done(path.parent)["losses"]
        log.info("%s: %s", system, results[system])
    metrics = {
        "config": asdict(cfg),
        "role_samples": {k: len(v) for k, v in data.items()},
        "results": results,
        "paper_table1_ood": PAPER_TABLE1_OOD,
    }
    if not is_main_process():
        return metrics
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
