"""Kill and resume (paperlab.testing.kill_and_resume, issue 28 item 7): the tiny experiment SIGTERMed at random
points (mid source training, mid fusion training, between stages) and rerun ends with the numbers of one
uninterrupted run: the sources' losses, every method's loss history and weights digest, accuracies, selection."""

from __future__ import annotations

import json
import sys

import pytest

from paperlab.testing import kill_and_resume

MICRO = [
    "experiment=tiny",
    "name=kr",
    "progress=false",
    "methods=[SFT,ProFuser]",
    "world.skills=[add,copy]",
    "sources=[{name: add-expert, model: tiny, skill: add, vocab_size: 300, family: llama}]",
    "world.n_source=64",
    "world.n_fusion=32",
    "world.n_eval=8",
    "source_train.steps=30",
    "source_train.save_steps=10",  # checkpoints mid source training
    "train.steps=30",
    "train.batch=8",
    "train.save_steps=10",  # Trainer checkpoints mid fusion training
]


def _outputs(folder):
    out = folder / "results" / "profuser" / "kr"
    metrics = json.loads((out / "metrics.json").read_text())
    source = json.loads((out / "sources" / "add-expert" / "source.json").read_text())
    keep = ("summary", "per_seed", "sources_and_gt", "selection")  # not work_per_rank: what this process did
    return {"source_loss": source["final_loss"], **{k: metrics[k] for k in keep}}


@pytest.mark.slow
def test_killed_tiny_experiment_resumes_to_the_uninterrupted_numbers(tmp_path):
    result = kill_and_resume(
        [sys.executable, "-m", "profuser", *MICRO],
        workdir=tmp_path,
        outputs=_outputs,
        kills=2,
        seed=49,  # 22 writes: kills after write 3 (mid source training) and 12 (mid SFT training)
        env={
            "PAPERLAB_RESULTS": "results",
            "TOKENIZERS_PARALLELISM": "false",
        },  # results in each run's folder
    )
    assert result.landed >= 1 and result.reference_writes >= 10, result
