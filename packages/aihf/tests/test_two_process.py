"""The LLM pipeline under two CPU processes (accelerate launch, gloo, DDP): both ranks finish, every result file is
written once and by rank 0, self-play and evaluation generation are sharded, and the final weights are equal on
both ranks (assert_replicas_equal inside the run; its digest equals the saved checkpoint's)."""

from __future__ import annotations

import json

import pytest

from paperlab.testing import run_two_processes


@pytest.mark.slow
def test_align_tiny_under_two_processes(tmp_path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    run = run_two_processes(
        [
            "-m",
            "aihf",
            "experiment=align_tiny",
            "align.iterations=1",
            "align.scale.launch=ddp",
            "align.scale.num_gpus=2",
        ],
        cwd=tmp_path,
        env={"PAPERLAB_RESULTS": str(results), "PAPERLAB_CACHE": str(cache)},
        timeout_s=300,
    )
    out = results / "aihf" / "align_tiny"
    written = {p.resolve() for _, p in run.writes}
    for name in ("metrics.json", "results.md", "eval-sft.json", "iter-1/done.json", "iter-1/eval.json"):
        assert (out / name).resolve() in written, name
    assert run.written_more_than_once() == [] and run.written_by_other_ranks() == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["history"]) == 1
    sft = json.loads((out / "eval-sft.json").read_text())
    assert len(sft["completions"]) == len(sft["prompts"]) == 6  # gathered from both ranks' shards, in order

    from transformers import AutoModelForCausalLM

    from paperlab.scale import weights_digest

    saved = AutoModelForCausalLM.from_pretrained(out / "iter-1")
    assert weights_digest(saved) == metrics["weights_digest"]
