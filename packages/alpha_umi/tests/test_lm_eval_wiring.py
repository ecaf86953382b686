"""eval.lm_eval_tasks: lm-eval runs on every trained model of a system (offline, on a local task file built here)
and its numbers go into the system's results."""

from __future__ import annotations

import json

ROWS = [
    {"question": "Action: get_price", "choices": [" Action Input:", " observation"], "label": 0},
    {"question": "Next:", "choices": [" caller.", " the"], "label": 0},
    {"question": "conclusion:", "choices": [" give up.", " Action"], "label": 0},
]


def _local_task(tmp_path) -> str:
    data = tmp_path / "au_mc.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    (tmp_path / "au_mc.yaml").write_text(
        "task: alpha_umi_tiny_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    return str(tmp_path)


def test_lm_eval_runs_on_each_trained_model_offline(bos_base, tmp_path) -> None:
    from alpha_umi.experiment import EvalConfig, lm_eval_scores

    base, _ = bos_base
    assert lm_eval_scores({"planner": base}, EvalConfig()) == {}  # no tasks: nothing runs
    ev = EvalConfig(
        lm_eval_tasks=["alpha_umi_tiny_mc"], lm_eval_include_path=_local_task(tmp_path), lm_eval_batch_size=2
    )
    out = lm_eval_scores({"planner": base, "caller": base}, ev)
    assert set(out) == {"planner", "caller"}
    acc = out["planner"]["alpha_umi_tiny_mc"]["acc"]
    # lm-eval's number is the model's own choice by log-likelihood, computed directly
    from alpha_umi.tokens import load_tokenizer
    from paperlab.scale import load_for_inference
    from paperlab.testing import choice_accuracy

    assert acc == choice_accuracy(load_for_inference(base), load_tokenizer(base), ROWS)
    assert out["caller"]["alpha_umi_tiny_mc"]["acc"] == acc  # the same weights, the same number
