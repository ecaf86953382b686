"""Kill-and-resume (paperlab.testing.kill_and_resume): ``python -m sbr_side_info experiment=dataset`` on a tiny
session-rec file, checkpointing every 8 training steps inside each epoch (``train.checkpoint_every``) and after each
epoch, is SIGTERMed at random points (between and in the middle of steps), rerun with the same command, and ends
with metrics identical to one uninterrupted run (timings excluded), no file half-written.

The reference run makes 35 atomic writes (the prepared split; per model 3 epochs x (4 mid-epoch + 1) checkpoints;
the plot and three result files); seed 7 kills after writes 10 (GRU4Rec, epoch 2) and 21 (SR-GNN, epoch 2), both
inside training. (A kill point after the last write can land after the run returned, when paperlab's hydra_entry
has already restored the default SIGTERM action, and the process then dies with -15 instead of exiting 0.)"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from paperlab.testing import kill_and_resume


def _session_rec(path: Path, n_sessions: int = 400, days: int = 20) -> Path:
    rng = random.Random(0)
    rows = ["SessionId\tItemId\tTime"]
    for s in range(n_sessions):
        t0 = 1_400_000_000 + (s * days * 86400) // n_sessions
        start = rng.randrange(60)
        rows += [f"{s}\t{(start + k) % 60}\t{t0 + 60 * k}" for k in range(rng.randint(2, 5))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


TIMINGS = ("s/epoch", "samples/s", "seconds", "samples_per_s")


def _metrics(folder: Path) -> list[dict]:
    rows = json.loads((folder / "out" / "metrics.json").read_text())["rows"]
    for row in rows:
        for key in TIMINGS:
            row.pop(key, None)
        for h in row["history"]:
            for key in TIMINGS:
                h.pop(key, None)
    return rows


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    data = _session_rec(tmp_path / "toy.txt")
    args = [
        sys.executable, "-m", "sbr_side_info", "experiment=dataset", "out_dir={cwd}/out", "models=[GRU4Rec,SR-GNN]",
        f"datasets=[{{name: toy, loader: session_rec, paths: [{data}]}}]", "train.epochs=3", "train.dim=16",
        "train.batch_size=16", "train.checkpoint_every=8", "train.progress=false", "train.eval_test_every_epoch=true",
    ]  # fmt: skip
    result = kill_and_resume(args, workdir=tmp_path / "runs", outputs=_metrics, kills=2, seed=7)
    print(result)
    assert result.landed >= 1
    assert result.reference_writes >= 10  # the prepared split, mid-epoch and epoch checkpoints, the results
