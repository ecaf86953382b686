"""Kill and resume (paperlab.testing.kill_and_resume, issue 28 item 7): a tiny GLPFT experiment SIGTERMed mid stage-1
and mid planner training (Trainer checkpoints every 3 steps) and rerun ends with the numbers of one uninterrupted
run: every model's logged losses and weights digest, the static metrics and live success."""

from __future__ import annotations

import json
import sys

import pytest

from paperlab.testing import kill_and_resume

STAGE = "{learning_rate: %s, epochs: 1, warmup_ratio: 0.0, weight_decay: %s}"
MICRO = [
    "experiment=tiny",
    "name=kr",
    "progress=false",
    "systems=['alpha-UMi (GLPFT)']",
    "model.layers=1",
    "model.hidden=32",
    "model.heads=2",
    "model.vocab_size=600",
    "data.train_tasks=6",
    "data.test_tasks=2",
    "data.live_tasks=1",
    "train.max_length=512",
    "train.batch_size=2",
    "train.stage1=" + STAGE % ("3.0e-3", "0.0"),
    *(f"train.{role}=" + STAGE % ("1.0e-3", "0.01") for role in ("planner", "caller", "summarizer")),
    "train.args={use_cpu: true, disable_tqdm: true, logging_steps: 1, save_steps: 3, bf16: false, "
    "gradient_checkpointing: false}",
    "max_new_tokens=16",
    "max_steps=2",
    "generation_batch=4",
]


def _outputs(folder):
    out = folder / "results" / "alpha_umi" / "kr"
    results = json.loads((out / "metrics.json").read_text())["results"]
    runs = {}
    for done in sorted((out / "models").glob("*/done.json")):
        # not train_loss (Trainer averages it over the steps of this process) nor the key (files' paths and times)
        d = json.loads(done.read_text())
        runs[done.parent.name] = (d["losses"], d["weights_digest"])
    return {"results": results, "runs": runs}


@pytest.mark.slow
def test_killed_glpft_experiment_resumes_to_the_uninterrupted_numbers(tmp_path):
    result = kill_and_resume(
        [sys.executable, "-m", "alpha_umi", *MICRO],
        workdir=tmp_path,
        outputs=_outputs,
        kills=2,
        seed=382,  # 22 writes: kills after write 2 (mid stage 1) and 9 (mid planner training)
        env={
            "PAPERLAB_RESULTS": "results",
            "TOKENIZERS_PARALLELISM": "false",
        },  # results in each run's folder
    )
    assert result.landed >= 1 and result.reference_writes >= 10, result
