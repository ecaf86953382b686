"""The tiny pipeline under two CPU processes (``accelerate launch``, gloo): both ranks finish, the modes are built
by both ranks together (each represents, answers and scores its half), results are written once and by rank 0,
the DDP replicas hold the same weights at the end (the entry point checks it and records the digest), and lm-eval
runs on the trained model once, on the main process, on a local task built here (offline)."""

import json

import pytest

from paperlab.testing import run_two_processes

ROWS = [
    {"q": "copy fad =", "choices": ["fad", "daf"], "gold": 0},
    {"q": "add 1 2 =", "choices": ["4", "3"], "gold": 1},
    {"q": "copy abc =", "choices": ["abc", "cba", "bca"], "gold": 0},
]


def write_task(folder):
    folder.mkdir()
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (folder / "profuser_world.yaml").write_text(
        "task: profuser_world\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{q}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: gold\n'
        "metric_list:\n  - metric: acc\n"
    )


@pytest.mark.slow
def test_tiny_pipeline_under_two_processes(tmp_path):
    results = tmp_path / "results"
    write_task(tmp_path / "tasks")
    run = run_two_processes(
        [
            "-m",
            "profuser",
            "experiment=tiny_ddp",
            "eval.lm_eval_tasks=[profuser_world]",
            f"eval.lm_eval_include_path={tmp_path / 'tasks'}",
        ],
        cwd=tmp_path,
        env={
            "PAPERLAB_RESULTS": str(results),
            "PAPERLAB_CACHE": str(tmp_path / "cache"),
            "HF_DATASETS_OFFLINE": "1",
        },
        timeout_s=400,
    )
    out = results / "profuser" / "tiny_ddp"
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.written_by_other_ranks() == []
    once = [
        p for p in run.written_more_than_once() if p.name != "manifest.json"
    ]  # manifest: started, then done
    assert once == [], once
    assert {p.name for _, p in run.writes} >= {"metrics.json", "results.md", "selection.json"}
    work = metrics["work_per_rank"]
    assert len(work) == 2
    n = 48 // 2 * 2  # the fusion corpus: a quarter per skill of 48 prompts, two skills
    for kind, total in (("represented", 2 * n), ("answered", n), ("scored", n)):
        assert [w.get(kind, 0) for w in work] == [total // 2, total // 2], (kind, work)
    (record,) = metrics["per_seed"]
    assert len(record["digest"]) == 64 and record["history"]
    acc = metrics["lm_eval"]["ProFuser/0"]["profuser_world"]["acc"]
    assert acc in (0.0, 1 / 3, 2 / 3, 1.0) and record["lm_eval"]["profuser_world"]["acc"] == acc
    assert (run.stdout + run.stderr).count("lm_eval: {") == 1  # the main process alone evaluated
