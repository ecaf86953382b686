"""Paper-scale evaluation wired into the training pipelines: EleutherAI's lm-evaluation-harness (``lm_eval``) on a
model held in memory, after each stage or at the end of a run.

``run_lm_eval(model, tokenizer, ["arc_easy", "hellaswag"])`` runs the harness's own tasks (they download their
data sets from the hub, so on a GPU machine with hub access); ``include_path`` adds task YAML files of one's own,
which is how the tests run it offline on a local JSONL task. Returns ``{task: {metric: value}}`` with lm_eval's
metric names without the filter suffix (``acc``, ``acc_norm``, ``acc_stderr``, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def run_lm_eval(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    *,
    include_path: str | Path | None = None,
    limit: int | float | None = None,
    batch_size: int = 8,
    num_fewshot: int | None = None,
    max_length: int | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate ``model`` (a ``PreTrainedModel`` or ``PeftModel``, on its device) with lm_eval on ``tasks``.

    ``include_path``: a folder (or file) of extra task YAMLs. ``limit``: examples per task (an int) or a fraction.
    The model's train/eval mode is restored afterwards. Raises ``ValueError`` naming a task lm_eval does not know.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks = list(tasks)
    if not tasks:
        return {}
    manager = None
    if include_path is not None:  # indexing lm_eval's thousands of own task files takes ~30 s: only if needed
        manager = TaskManager(include_path=str(include_path), include_defaults=False)
        if any(t not in manager.all_tasks for t in tasks):
            manager = None
    if manager is None:
        manager = TaskManager(include_path=str(include_path) if include_path is not None else None)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" (nor in {include_path})" if include_path is not None else ""
        raise ValueError(
            f"lm_eval_tasks: unknown task(s) {unknown}{where}; lm_eval lists them with `lm-eval ls tasks`"
        )
    was_training = model.training
    model.eval()
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=manager,
            limit=limit,
            num_fewshot=num_fewshot,
            log_samples=False,
            bootstrap_iters=0,
        )
    finally:
        model.train(was_training)
    results: dict[str, dict[str, float]] = {}
    for task, metrics in (out or {}).get("results", {}).items():
        clean: dict[str, float] = {}
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                clean[key.split(",", 1)[0]] = float(value)
        results[task] = clean
    log.info("lm_eval: %s", {t: m.get("acc", m) for t, m in results.items()})
    return results


def lm_eval_from_config(model: Any, tokenizer: Any, cfg: Any) -> dict[str, dict[str, float]]:
    """:func:`run_lm_eval` with the settings of a package's evaluation config, on the main process only (``{}`` on
    the others and when ``cfg.lm_eval_tasks`` is empty; the caller's ranks wait under the raised process-group
    timeout). Fields read, each optional but the first: ``lm_eval_tasks``, ``lm_eval_include_path`` ("": lm-eval's
    own tasks), ``lm_eval_limit`` (0: all; below 1: a fraction; else a count), ``lm_eval_batch_size`` (8),
    ``lm_eval_num_fewshot`` (None or -1: each task's default)."""
    from paperlab.scale import is_main_process

    tasks = list(cfg.lm_eval_tasks or [])
    if not tasks or not is_main_process():
        return {}
    limit = getattr(cfg, "lm_eval_limit", 0) or None
    if limit is not None and limit >= 1:
        limit = int(limit)
    shots = getattr(cfg, "lm_eval_num_fewshot", None)
    return run_lm_eval(
        model,
        tokenizer,
        tasks,
        include_path=getattr(cfg, "lm_eval_include_path", "") or None,
        limit=limit,
        batch_size=getattr(cfg, "lm_eval_batch_size", 8),
        num_fewshot=None if shots is None or shots < 0 else int(shots),
    )
