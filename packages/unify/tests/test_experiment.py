"""The experiment driver end to end on a very small world: files written, claim and diagnostics reported."""

import json

from hydra import compose, initialize_config_module

from unify.experiment import run


def test_tiny_experiment_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    overrides = [
        "experiment=tiny",
        "name=smoke",
        "variants=[latent,unify]",
        "train.steps=6",
        "train.stage1_steps=2",
        "train.batch_size=16",
        "data.synthetic.train_videos=64",
        "data.synthetic.test_videos=48",
    ]
    with initialize_config_module("unify.conf", version_base=None):
        metrics = run(compose("config", overrides=overrides))
    out = tmp_path / "unify" / "smoke"
    for name in ("metrics.json", "results.md", "loss.png", "r1.png", "explanations.md"):
        assert (out / name).exists(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["claim"]["delta"] == metrics["claim"]["unify"] - metrics["claim"]["latent_only"]
    # word-group detector AUCs only for the variant with a trained lexicon, each in [0, 1]
    assert "video_lexicon_auc" not in metrics["variants"]["latent"]
    aucs = metrics["variants"]["unify"]["video_lexicon_auc"]
    assert set(aucs) == {"colour", "shape", "motion"} and all(0 <= a <= 1 for a in aucs.values())
    # knowing the motions can only help the bag-of-words oracle
    oracle = metrics["oracle_t2v_R@1"]
    assert oracle["colour+shape"] <= oracle["colour+shape+motion"] <= 100
    assert "Bag-of-words oracles" in (out / "results.md").read_text()
