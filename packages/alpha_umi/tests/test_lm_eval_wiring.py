"""eval.lm_eval_tasks: lm-eval runs on every trained model of a system (offline, on a local task file built here)
and its numbers go into the system's results."""

from __future__ import annotations

ROWS = [
    {"question": "Action: get_price", "choices": [" Action Input:", " observation"], "label": 0},
    {"question": "Next:", "choices": [" caller.", " the"], "label": 0},
    {"question": "conclusion:", "choices": [" give up.", " Action"], "label": 0},
]


def test_lm_eval_runs_on_each_trained_model_offline(bos_base, tmp_path) -> None:
    from alpha_umi.experiment import EvalConfig, lm_eval_scores
    from paperlab.testing import choice_accuracy, write_choice_task

    base, _ = bos_base
    assert lm_eval_scores({"planner": base}, EvalConfig()) == {}  # no tasks: nothing runs
    ev = EvalConfig(
        lm_eval_tasks=["alpha_umi_tiny_mc"],
        lm_eval_include_path=str(write_choice_task(tmp_path, "alpha_umi_tiny_mc", ROWS)),
        lm_eval_batch_size=2,
    )
    out = lm_eval_scores({"planner": base, "caller": base}, ev)
    assert set(out) == {"planner", "caller"}
    acc = out["planner"]["alpha_umi_tiny_mc"]["acc"]
    # lm-eval's number is the model's own choice by log-likelihood, computed directly
    from alpha_umi.tokens import load_tokenizer
    from paperlab.scale import load_for_inference

    assert acc == choice_accuracy(load_for_inference(base), load_tokenizer(base), ROWS)
    assert out["caller"]["alpha_umi_tiny_mc"]["acc"] == acc  # the same weights, the same number
