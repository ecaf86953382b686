"""The tiny training under two CPU processes (``accelerate launch``, gloo, DDP; paperlab.testing.run_two_processes):
both ranks finish, rank 0 writes every result file once, the global batch is split over the ranks and the final
weights are equal on both (their digests, logged by each rank)."""

from __future__ import annotations

import json
import re

import pytest

from paperlab.testing import run_two_processes


@pytest.mark.slow
def test_tiny_under_two_processes(tmp_path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    run = run_two_processes(
        [
            "-m", "paperowl", "experiment=tiny", "experiment.synthetic_train=24", "experiment.synthetic_test=4",
            "experiment.model.vision_clip_steps=2", "experiment.train.steps=3", "experiment.train.batch_size=8",
            "+experiment.train.micro_batch_size=2", "experiment.max_new_tokens=3",
        ],
        cwd=tmp_path,
        env={"PAPERLAB_RESULTS": str(results), "PAPERLAB_CACHE": str(cache)},
        timeout_s=300,
    )  # fmt: skip
    out = results / "paperowl" / "tiny"
    written = {p.resolve() for _, p in run.writes}
    for name in ("metrics.json", "results.md", "loss.png"):
        assert (out / name).resolve() in written, name
    assert run.written_more_than_once() == [] and run.written_by_other_ranks() == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["config"]) > 0
    digests = set(re.findall(r"weights digest ([0-9a-f]{64})", run.stdout + run.stderr))
    assert digests == {metrics["weights_digest"]}
