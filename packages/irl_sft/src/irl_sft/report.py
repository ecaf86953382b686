"""The report of the LLM stage loop (:func:`irl_sft.stages.run_llm`): ``stage_metrics.png``, ``results.md``,
``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paperlab.report import plot_lines, write_results


def stage_report(cfg: Any, out: Path, metrics: dict[str, Any], per_stage: int, n_held: int) -> None:
    history = metrics["history"]
    plot_lines(
        out / "stage_metrics.png",
        [h["stage"] for h in history],
        {"ranking accuracy (%)": [h["ranking_acc"] for h in history]},
        xlabel="IRFT stage (0 = starting model)",
        ylabel="held-out ranking accuracy (%)",
        title=f"{cfg.method.upper()} on {cfg.model}: demo vs pi_0 generation",
    )
    columns = ["stage", "ranking_acc", "demo_loglik_per_token", "train_loss"]
    columns += [k for k in ("pref_acc", "judge_reward") if k in history[0]]
    if cfg.method == "rft":  # the stage's reward model: its accuracy, and the policy's reward before/after RL
        columns += ["reward_train_acc", "reward_demo", "reward_before", "reward_after"]
    rows = [{k: h.get(k, "") for k in columns} for h in history]
    for row, h in zip(
        rows, history, strict=True
    ):  # lm-eval: the first metric of each task (acc where it has one)
        for task, scores in h.get("lm_eval", {}).items():
            key = "acc" if "acc" in scores else next(iter(scores), "")
            row[f"{task} {key}"] = scores.get(key, "")
    write_results(
        out,
        metrics,
        rows=rows,
        title=f"irl_sft {cfg.name}: {cfg.method.upper()} stages on {cfg.model}",
        notes=(
            f"{cfg.stages} stages of {per_stage} prompts, beta {cfg.beta}; held-out: {n_held} demonstrations. "
            "Ranking accuracy: r = log pi - log pi_0 ranks the demonstration above pi_0's generation."
        ),
    )
    print((out / "results.md").read_text())
