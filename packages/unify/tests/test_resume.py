"""The command line survives SIGTERM (issue 28): ``python -m unify`` killed after a random atomic write (a variant's
training checkpoint, every ``train.checkpoint_every`` steps) and rerun ends with the metrics of one uninterrupted
run, exit 143 and a resume line in between, no half-written file."""

import json
import sys
from pathlib import Path

import pytest

from paperlab.testing import kill_and_resume

TINY = [
    "experiment=tiny",
    "variants=[latent,unify]",
    "train.steps=24",
    "train.checkpoint_every=6",
    "train.stage1_steps=6",
    "train.batch_size=8",
    "data.synthetic.train_videos=32",
    "data.synthetic.test_videos=16",
    "model.width=32",
    "model.layers=2",
    "model.heads=2",
    "model.embed_dim=16",
]


def _outputs(folder: Path) -> tuple[dict, str]:
    out = folder / "results" / "unify" / "tiny"
    return json.loads((out / "metrics.json").read_text()), (out / "explanations.md").read_text()


@pytest.mark.slow
def test_cli_killed_and_rerun_ends_with_the_uninterrupted_metrics(tmp_path) -> None:
    env = {"PAPERLAB_RESULTS": "results"}  # relative: inside each run's folder
    # seed 7 kills after writes 3 and 6 of 14: in the latent variant's and in UNIFY's training (a kill after the
    # last write can land in the interpreter's shutdown, after hydra_entry gave SIGTERM back: exit -15)
    args = [sys.executable, "-m", "unify", *TINY]
    result = kill_and_resume(args, workdir=tmp_path, outputs=_outputs, kills=2, seed=7, env=env)
    assert result.reference_writes == 2 * 4 + 6, result  # 4 checkpoints per variant, 6 result files
    assert [k["after_write"] for k in result.kills] == [3, 6]
    assert result.landed == 2, result.kills
