"""``recall``: answer accuracy and perplexity vs cache budget for every policy on the associative-recall language.

Steps: train (or load) the tiny recall LM; train the controller on oracle top-K labels of training sequences; then on
held-out sequences prefill the prompt (pairs + separator), release to the budget, and decode the queries token by
token (teacher-forced) with each policy; ADORE is run with release only and with rebuild (R tokens per step).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from adore.controller import AdorePolicy, ControllerConfig, recall_at_k, train_controller
from adore.decode import DecodeConfig, full_attention_map, run_sequence
from adore.policies import H2O, TOVA, FullCache, OracleTopK, RandomPolicy, SlidingWindow, SnapKV, StreamingLLM
from adore.tasks import SEP, RecallConfig, answer_accuracy, per_query_accuracy, sample, train_recall_lm
from paperlab.config import ConfigError, from_config, require
from paperlab.data import cache_root
from paperlab.io import derived_key
from paperlab.report import plot_lines, results_dir, write_results
from paperlab.seed import seed_everything

log = logging.getLogger(__name__)
POLICY_NAMES = (
    "full",
    "window",
    "streaming_llm",
    "h2o",
    "tova",
    "snapkv",
    "random",
    "oracle",
    "adore",
    "adore+rebuild",
    "adore+rebuild-ctx0",
)


@dataclass
class RecallExperimentConfig:
    name: str = "recall"
    kind: str = "recall"  # experiment=lm sets "lm" and its own block (adore.lm.LMExperimentConfig)
    task: RecallConfig = field(default_factory=RecallConfig)
    lm_steps: int = 2000
    lm_lr: float = 2e-3
    checkpoint_every: int = (
        100  # LM training steps between checkpoints of its training state (0: only at the end)
    )
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    budgets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5])  # fractions of the sequence length
    rebuild: int = 2  # R: released tokens rebuilt per step
    rebuild_context: int = 1  # each picked token brings up to this many released left neighbours (within R)
    eval_sequences: int = 100
    policies: list[str] = field(default_factory=lambda: list(POLICY_NAMES))
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        require(all(0 < b <= 1 for b in self.budgets), "budgets", self.budgets, "fractions in (0, 1]")
        for p in self.policies:
            require(p in POLICY_NAMES, "policies", p, f"names from {', '.join(POLICY_NAMES)}")
        require(self.eval_sequences >= 1, "eval_sequences", self.eval_sequences, ">= 1")
        require(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")


def _policy(
    name: str, budget: int, controller: Any, rebuild: int = 2, context: int = 1
) -> tuple[Any, DecodeConfig, Any]:
    sinks = max(1, budget // 4)
    if name == "full":
        return FullCache(), DecodeConfig(budget=budget), None
    if name == "window":
        return SlidingWindow(), DecodeConfig(budget=budget), None
    if name == "streaming_llm":
        return StreamingLLM(sinks=sinks), DecodeConfig(budget=budget, sinks=sinks), None
    if name == "h2o":
        return H2O(), DecodeConfig(budget=budget), None
    if name == "tova":
        return TOVA(), DecodeConfig(budget=budget), None
    if name == "snapkv":
        return SnapKV(), DecodeConfig(budget=budget), None
    if name == "random":
        return RandomPolicy(), DecodeConfig(budget=budget), None
    if name == "oracle":
        return OracleTopK(), DecodeConfig(budget=budget), None
    if name == "adore":
        return AdorePolicy(controller=controller), DecodeConfig(budget=budget, sinks=1), None
    r = min(rebuild, max(0, budget - 2))
    ctx = 0 if name == "adore+rebuild-ctx0" else context
    dcfg = DecodeConfig(budget=budget, sinks=1, rebuild=r, rebuild_context=ctx)
    return AdorePolicy(controller=controller), dcfg, controller


def _lm_checkpoint(cfg: RecallExperimentConfig) -> Path:
    """The recall LM's training state (resumed when unfinished, loaded when finished), keyed by what shapes it."""
    settings = {"task": asdict(cfg.task), "steps": cfg.lm_steps, "lr": cfg.lm_lr, "seed": cfg.seed}
    return cache_root() / "adore" / f"recall-lm-{derived_key(settings)}.pt"


def controller_checkpoint(origin: dict[str, Any], controller: ControllerConfig, inputs: Any = ()) -> Path:
    """The controller's training state, keyed by its settings (not ``checkpoint_every``, which does not change it),
    by ``origin`` (what its LM and training sequences are derived from) and by the ``inputs`` files."""
    settings = {k: v for k, v in asdict(controller).items() if k != "checkpoint_every"}
    key = derived_key({"origin": origin, "controller": settings}, inputs)
    return cache_root() / "adore" / f"controller-{key}.pt"


def recall_controller(cfg: RecallExperimentConfig, lm: Any, controller: ControllerConfig, seed: int) -> Any:
    """The controller of the recall LM, trained on ``controller.sequences`` recall sequences of ``seed + 1``
    (checkpointed, resumed, then loaded from the cache: shared by recall and qa)."""
    train_ids, _ = sample(cfg.task, controller.sequences, seed=seed + 1)
    origin = {"lm": _lm_checkpoint(cfg).name, "task": asdict(cfg.task), "seed": seed}
    return train_controller(
        lm, train_ids, controller, progress=cfg.progress, checkpoint=controller_checkpoint(origin, controller)
    )


def recall_lm(cfg: RecallExperimentConfig, progress: bool | None = None) -> Any:
    """The recall LM of these settings: trained once (checkpointed every ``checkpoint_every`` steps, resumed after
    an interruption), then loaded from the cache (shared by recall and qa)."""
    return train_recall_lm(
        cfg.task,
        steps=cfg.lm_steps,
        lr=cfg.lm_lr,
        seed=cfg.seed,
        checkpoint=_lm_checkpoint(cfg),
        progress=cfg.progress if progress is None else progress,
        checkpoint_every=cfg.checkpoint_every,
    )


def run_recall(cfg: RecallExperimentConfig) -> dict[str, Any]:
    seed_everything(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    lm = recall_lm(cfg)
    controller = recall_controller(cfg, lm, cfg.controller, cfg.seed)
    eval_ids, eval_mask = sample(cfg.task, cfg.eval_sequences, seed=cfg.seed + 2)
    with torch.no_grad():
        by_query = [100 * a for a in per_query_accuracy(lm(eval_ids).logits[:, :-1], eval_ids, eval_mask)]
    log.info("full-cache accuracy by query order: %s", [round(a, 1) for a in by_query])
    probe = eval_ids[:20]
    recency = recall_at_k(lambda pos, ids, t: pos.float(), lm, probe, cfg.controller.top_k)
    rand_gen = torch.Generator().manual_seed(0)
    random_r = recall_at_k(
        lambda pos, ids, t: torch.rand(pos.numel(), generator=rand_gen), lm, probe, cfg.controller.top_k
    )
    learned = recall_at_k(
        lambda pos, ids, t: controller.score(pos, ids, t, "rebuild"), lm, probe, cfg.controller.top_k
    )
    futures = [full_attention_map(lm, ids) for ids in eval_ids]
    length = cfg.task.length
    rows = []
    for fraction in cfg.budgets:
        budget = max(3, round(fraction * length))
        for name in cfg.policies:
            policy, dcfg, rebuild_controller = _policy(
                name, budget, controller, cfg.rebuild, cfg.rebuild_context
            )
            accs, ces, peak, peak_cache = [], [], 0, 0
            for ids, mask, future in zip(eval_ids, eval_mask, futures, strict=True):
                dcfg.prefill = int((ids == SEP).nonzero()[0]) + 1
                out = run_sequence(
                    lm,
                    ids,
                    policy,
                    dcfg,
                    controller=rebuild_controller,
                    future=future if name == "oracle" else None,
                )
                acc, ce = answer_accuracy(out["logits"], ids, mask)
                accs.append(acc)
                ces.append(ce)
                peak = max(peak, out["max_in_forward"])
                peak_cache = max(peak_cache, max(out["cache_sizes"]))
            rows.append(
                {
                    "budget": f"{round(100 * fraction)}% ({budget} tok)",
                    "fraction": fraction,
                    "policy": name,
                    "answer accuracy %": 100 * sum(accs) / len(accs),
                    "answer perplexity": math.exp(sum(ces) / len(ces)),
                    "max cache after a step": peak_cache,
                    "max tokens in a forward": peak,
                }
            )
            log.info("%s", rows[-1])
    out_dir = results_dir("adore", cfg.name)
    series = {p: [r["answer accuracy %"] for r in rows if r["policy"] == p] for p in cfg.policies}
    plot_lines(
        out_dir / "accuracy_vs_budget.png",
        [100 * b for b in cfg.budgets],
        series,
        xlabel="cache budget (% of the sequence)",
        ylabel="answer accuracy (%)",
        title="Associative recall under a KV budget",
    )
    metrics = {
        "rows": rows,
        "controller_recall@K": {"controller": learned, "recency": recency, "random": random_r},
        "sequence_length": length,
        "full_cache_accuracy_by_query": by_query,
        "chance_accuracy": 100.0 / cfg.task.n_values,
    }
    notes = (
        "The prompt (pairs + separator) is prefilled in one forward, so `max tokens in a forward` is the prompt "
        "length; the cache is then released to the budget and the queries are decoded token by token. "
        f"Sequence length {length}; chance accuracy {100.0 / cfg.task.n_values:.1f}%. Controller recall of the "
        f"oracle top-{cfg.controller.top_k} (rebuild head, 20 held-out sequences): {100 * learned:.1f}% vs recency "
        f"{100 * recency:.1f}% and random {100 * random_r:.1f}%. Full-cache accuracy by query order (flat = the LM "
        f"looks the key up): {', '.join(f'{a:.0f}' for a in by_query)}%."
    )
    write_results(
        out_dir,
        metrics,
        rows=rows,
        columns=[
            "budget",
            "policy",
            "answer accuracy %",
            "answer perplexity",
            "max cache after a step",
            "max tokens in a forward",
        ],
        title="ADORE: recall vs budget",
        notes=notes,
    )
    print((out_dir / "results.md").read_text())
    return metrics


def run(cfg_in: Any) -> dict[str, Any]:
    """Dispatch on ``kind``: ``recall`` (the config's top level), ``lm`` (the ``lm`` block, experiment=lm) or ``qa``
    (the ``qa`` block plus the top level's recall settings and controller, experiment=qa / paper_longbench)."""
    from paperlab.config import _plain

    data = dict(_plain(cfg_in))
    kind = data.get("kind", "recall")
    lm_block = data.pop("lm", None)
    qa_block = data.pop("qa", None)
    require(kind in ("recall", "lm", "qa"), "kind", kind, "'recall', 'lm' or 'qa'")
    if kind == "lm":
        from adore.lm import LMExperimentConfig, run_lm

        try:
            cfg_lm = from_config(LMExperimentConfig, lm_block or {}, where="lm")
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err
        return run_lm(cfg_lm)
    try:
        cfg = from_config(RecallExperimentConfig, data)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err
    if kind == "qa":
        from adore.qa import QAExperimentConfig, run_qa

        try:
            cfg_qa = from_config(QAExperimentConfig, qa_block or {}, where="qa")
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err
        return run_qa(cfg_qa, cfg, cfg.controller)
    return run_recall(cfg)
