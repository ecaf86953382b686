"""Kill-and-resume (paperlab.testing.kill_and_resume): the evaluation SIGTERMed at random points (between and in
the middle of answers: the progress file is written every 8 answers) and rerun with the same answer cache ends
with scores identical to one uninterrupted run, no file half-written."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from paperlab.testing import kill_and_resume
from roleinteract.synthetic import raw_item, write_items


def _data(path: Path) -> Path:
    rng = random.Random(0)
    items = [raw_item(label=[rng.choice("ABCD")]) for _ in range(24)]
    items += [raw_item("Group-SAP-Negative", label=[rng.choice("ABCD")]) for _ in range(8)]
    return write_items(path, items)


def _scores(folder: Path) -> dict:
    metrics = json.loads((folder / "results" / "roleinteract" / "kr" / "metrics.json").read_text())
    return {k: metrics[k] for k in ("n_items", "models", "chance", "drift")}


@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_same_scores(tmp_path: Path) -> None:
    data = _data(tmp_path / "items.json")
    run = (
        f"PAPERLAB_RESULTS={{cwd}}/results exec {sys.executable} -m roleinteract name=kr 'data=[{data}]' "
        "'models=[tiny,random,oracle]' cache={cwd}/answers.jsonl fallback_to_fixtures=false progress=false "
        "generation.max_new_tokens=4 generation.batch_size=4 paper_rows=[]"
    )
    result = kill_and_resume(["sh", "-c", run], workdir=tmp_path / "runs", outputs=_scores, kills=2, seed=3)
    assert result.landed >= 1
    print(result)
