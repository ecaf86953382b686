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

from adore.controller import ControllerConfig, controller_checkpoint, recall_at_k, train_controller
from adore.decode import full_attention_map, run_sequence
from adore.finetune import FinetuneConfig, decode_slots, finetune_lm
from adore.registry import POLICIES, POLICY_NAMES, budget_tokens, check_names, manual
from adore.tasks import (
    SEP,
    RecallConfig,
    answer_accuracy,
    checkpoint_finished,
    fixed_threads,
    per_query_accuracy,
    sample,
    source_digest,
    train_recall_lm,
)
from paperlab.config import require
from paperlab.data import cache_root
from paperlab.io import derived_key
from paperlab.report import plot_lines, results_dir, write_results
from paperlab.seed import seed_everything

log = logging.getLogger(__name__)


@dataclass
class RecallExperimentConfig:
    name: str = "recall"
    kind: str = "recall"  # experiment=lm / qa set "lm" / "qa" and their own block (adore.experiment.run)
    task: RecallConfig = field(default_factory=RecallConfig)
    lm_steps: int = 2000
    lm_lr: float = 2e-3
    checkpoint_every: int = (
        100  # LM training steps between checkpoints of its training state (0: only at the end)
    )
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    # the paper's ADORE: the LM fine-tuned under the controller's cache, one copy per budget (adore.finetune);
    # its rows are "<finetune.policy>+ft" beside the frozen-LM ones
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    budgets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5])  # fractions of the sequence length
    rebuild: int = 2  # R: released tokens rebuilt per step
    rebuild_context: int = 1  # each picked token brings up to this many released left neighbours (within R)
    eval_sequences: int = 100
    policies: list[str] = field(default_factory=lambda: list(POLICY_NAMES))
    seed: int = 0
    threads: int = 1  # torch threads for training and evaluation, pinned: the numbers depend on it
    progress: bool = True

    def __post_init__(self) -> None:
        require(self.threads >= 0, "threads", self.threads, ">= 0 (0: inherit the thread count)")
        require(all(0 < b <= 1 for b in self.budgets), "budgets", self.budgets, "fractions in (0, 1]")
        check_names(self.policies)
        require(self.eval_sequences >= 1, "eval_sequences", self.eval_sequences, ">= 1")
        require(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")


def _lm_checkpoint(cfg: RecallExperimentConfig) -> Path:
    """The recall LM's training state (resumed when unfinished, loaded when finished), keyed by what shapes it."""
    import adore.tasks

    settings = {
        "task": asdict(cfg.task),
        "steps": cfg.lm_steps,
        "lr": cfg.lm_lr,
        "seed": cfg.seed,
        "threads": cfg.threads,
        "code": source_digest(adore.tasks),
    }
    return cache_root() / "adore" / f"recall-lm-{derived_key(settings)}.pt"


def recall_controller(cfg: RecallExperimentConfig, lm: Any, controller: ControllerConfig, seed: int) -> Any:
    """The controller of the recall LM, trained on ``controller.sequences`` recall sequences of ``seed + 1``
    (checkpointed, resumed, then loaded from the cache: shared by recall and qa)."""
    train_ids, _ = sample(cfg.task, controller.sequences, seed=seed + 1)
    return train_controller(
        lm,
        train_ids,
        controller,
        progress=cfg.progress,
        checkpoint=recall_controller_checkpoint(cfg, controller, seed),
    )


def recall_controller_checkpoint(
    cfg: RecallExperimentConfig, controller: ControllerConfig | None = None, seed: int | None = None
) -> Path:
    """Where :func:`recall_controller` keeps the controller of these settings."""
    import adore.controller
    import adore.decode

    origin = {
        "lm": _lm_checkpoint(cfg).name,
        "task": asdict(cfg.task),
        "seed": cfg.seed if seed is None else seed,
        "code": source_digest(adore.controller, adore.decode),
    }
    return controller_checkpoint(origin, cfg.controller if controller is None else controller)


def _finetune_checkpoint(cfg: RecallExperimentConfig, budget: int) -> Path:
    """The fine-tuned LM of one budget, keyed by its LM, controller, budget and settings."""
    import adore.decode
    import adore.finetune

    settings = {
        "lm": _lm_checkpoint(cfg).name,
        "controller": recall_controller_checkpoint(cfg).name,
        "budget": budget,
        "rebuild": cfg.rebuild,
        "rebuild_context": cfg.rebuild_context,
        "finetune": asdict(cfg.finetune),
        "seed": cfg.seed,
        "threads": cfg.threads,
        "code": source_digest(adore.finetune, adore.decode),
    }
    return cache_root() / "adore" / f"recall-ft-{derived_key(settings)}.pt"


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
    """Every policy at every budget (``cfg.threads`` torch threads throughout: the table is the same on every run)."""
    with fixed_threads(cfg.threads):
        return _run_recall(cfg)


def _run_recall(cfg: RecallExperimentConfig) -> dict[str, Any]:
    seed_everything(cfg.seed)
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

    def evaluate(model: Any, name: str, budget: int, fraction: float, label: str) -> dict[str, Any]:
        policy, dcfg, rebuild_controller = manual(name, budget, controller, cfg.rebuild, cfg.rebuild_context)
        accs, ces, peak, peak_cache = [], [], 0, 0
        for ids, mask, future in zip(eval_ids, eval_mask, futures, strict=True):
            dcfg.prefill = int((ids == SEP).nonzero()[0]) + 1
            out = run_sequence(
                model,
                ids,
                policy,
                dcfg,
                controller=rebuild_controller,
                future=future if POLICIES[name].needs_future else None,
            )
            acc, ce = answer_accuracy(out["logits"], ids, mask)
            accs.append(acc)
            ces.append(ce)
            peak = max(peak, out["max_in_forward"])
            peak_cache = max(peak_cache, max(out["cache_sizes"]))
        row = {
            "budget": f"{round(100 * fraction)}% ({budget} tok)",
            "fraction": fraction,
            "policy": label,
            "answer accuracy %": 100 * sum(accs) / len(accs),
            "answer perplexity": math.exp(sum(ces) / len(ces)),
            "max cache after a step": peak_cache,
            "max tokens in a forward": peak,
        }
        log.info("%s", row)
        return row

    rows = []
    ft = cfg.finetune
    if ft.steps:
        ft_ids, ft_mask = sample(cfg.task, ft.sequences, seed=cfg.seed + 3)
    for fraction in cfg.budgets:
        budget = budget_tokens(fraction, length, cfg.rebuild)
        rows += [evaluate(lm, name, budget, fraction, name) for name in cfg.policies]
        if ft.steps:
            checkpoint = _finetune_checkpoint(cfg, budget)
            slots = None  # the decodes of the training sequences: only when training
            if not checkpoint_finished(checkpoint, ft.steps):
                slots = decode_slots(
                    lm, ft_ids, controller, budget, cfg.rebuild, cfg.rebuild_context, ft.policy
                )
            tuned = finetune_lm(
                lm,
                slots,
                ft_mask,
                ft,
                seed=cfg.seed,
                checkpoint=checkpoint,
                progress=cfg.progress,
                checkpoint_every=cfg.checkpoint_every,
            )
            rows.append(evaluate(tuned, ft.policy, budget, fraction, f"{ft.policy}+ft"))
    out_dir = results_dir("adore", cfg.name)
    labels = [*cfg.policies, *([f"{ft.policy}+ft"] if ft.steps else [])]
    series = {p: [r["answer accuracy %"] for r in rows if r["policy"] == p] for p in labels}
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
