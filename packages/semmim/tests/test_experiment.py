"""The experiment runs end to end at a toy size and writes its report; a finished run is not repeated."""

import json

from paperlab.config import compose, from_config
from semmim.experiment import ExperimentConfig, run


def test_tiny_experiment_writes_results_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    overrides = [
        "experiment=tiny",
        "name=toy",
        "train.steps=4",
        "train.warmup=1",
        "train.log_every=2",
        "data.train_images=64",
        "data.test_images=16",
        "model.vision_depth=1",
        "model.text_depth=1",
        "progress=false",
        "methods=[base,semmim]",
    ]
    cfg = from_config(ExperimentConfig, compose("semmim", overrides))
    summary = run(cfg)
    out = tmp_path / "semmim" / "toy"
    for name in ("metrics.json", "results.md", "results.csv", "r1.png", "loss.png", "runs.jsonl"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["method"] for r in metrics["runs"]} == {"base", "semmim"}
    assert 0 <= summary["semmim/itm_t2i_R@1"] <= 100 and "semmim_beats_base_by_2_sem" in summary
    assert "Claim check" in (tmp_path / "semmim" / "toy" / "results.md").read_text()
    assert "Paper comparison" in (out / "results.md").read_text()
    lines = (out / "runs.jsonl").read_text().count("\n")
    run(cfg)  # cached: nothing is trained again
    assert (out / "runs.jsonl").read_text().count("\n") == lines
