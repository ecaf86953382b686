"""The paper's claim on a small tiny world: the reward (inference mode) credits the specialist where the ground truth
is wrong, cross entropy (training mode) does not; and ProFuser, which learns from both modes, beats SFT and is at
least as good as FuseLLM on held-out accuracy. One seed, two specialists, ~1 min on one core."""

from paperlab.config import compose, from_config
from profuser.experiment import ExperimentConfig, run

OVERRIDES = [
    "experiment=tiny",
    "name=claim",
    "progress=false",
    "seeds=[0]",
    "methods=[SFT,FuseLLM,ProFuser]",
    "world.skills=[add,safe,copy]",
    "sources=[{name: add-expert, model: tiny, skill: add, vocab_size: 300, family: llama},"
    "{name: safe-expert, model: tiny, skill: safe, vocab_size: 700, family: mistral}]",
    "world.n_source=600",
    "world.n_fusion=300",
    "world.n_eval=60",
    "source_train.steps=300",
    "train.steps=600",
]


def test_profuser_beats_sft_and_matches_fusellm(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    cfg = from_config(ExperimentConfig, compose("profuser", OVERRIDES))
    metrics = run(cfg)
    sel = metrics["selection"]
    # where the generalist's ground truth is wrong, CE credits a source that agrees with it, the reward the specialist
    assert sel["training_mode_picks_specialist_on_wrong_gt_pct"] < 30
    assert sel["inference_mode_picks_specialist_pct"] > sel["training_mode_picks_specialist_pct"] + 10
    mean = {m: v["mean"] for m, v in metrics["summary"].items()}
    assert mean["ProFuser"] >= mean["FuseLLM"], mean
    assert mean["ProFuser"] > mean["SFT"] + 2, mean
    out = tmp_path / "profuser" / "claim"
    for name in ("results.md", "metrics.json", "accuracy.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0
    # a second call resumes from the cached sources, stores and runs and reports the same numbers
    again = run(cfg)
    assert {m: v["mean"] for m, v in again["summary"].items()} == mean
