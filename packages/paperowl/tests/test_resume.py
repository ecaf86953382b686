"""Training checkpoints are derived files keyed by what they were derived from (paperlab.io.derived_key: the
settings that change the weights, the model config, the data): a changed setting or data set is never resumed
from a stale checkpoint; and the tiny run, killed by SIGTERM at random points and rerun, ends with the same
metrics as one uninterrupted run (paperlab.testing.kill_and_resume)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from paperlab.config import ConfigError
from paperlab.testing import kill_and_resume
from paperowl.data import Sample
from paperowl.model import ModelConfig, PaperOwlModel, build_tokenizer
from paperowl.synthetic import caption_vocabulary, make_diagrams
from paperowl.train import TrainConfig, train

PROMPT = "<image>\nWrite the caption of this figure."


def _model() -> PaperOwlModel:
    config = ModelConfig(
        image_size=32, patch_size=8, num_queries=4, tokenizer_kind="word", vocab_size=200,
        lm_modules_to_save=["embed_tokens", "lm_head"], anchors=[[1, 1]],
    )  # fmt: skip
    return PaperOwlModel(config, build_tokenizer(config, [*caption_vocabulary(), PROMPT[8:]]))


def _samples(n: int, seed: int) -> list[Sample]:
    return [Sample([d.image], PROMPT, d.caption, "figure_cap") for d in make_diagrams(n, seed=seed)]


OPTIONS = dict(steps=4, batch_size=4, lr=3e-3, warmup_steps=1, min_lr=1e-4)


def _train(ckpt: Path, samples, **changes) -> list[float]:
    torch.manual_seed(0)
    return train(
        _model(), samples, TrainConfig(**{**OPTIONS, **changes}, checkpoint_path=str(ckpt)), progress=False
    )


def test_a_checkpoint_of_other_settings_or_data_is_refused_not_resumed(tmp_path: Path) -> None:
    samples = _samples(8, seed=1)
    ckpt = tmp_path / "state.pt"
    first = _train(ckpt, samples)
    assert len(first) == 4
    assert _train(ckpt, samples) == first  # same settings and data: the finished run is resumed as is
    assert _train(ckpt, samples, checkpoint_every=2, stop_after=None) == first  # where/when to save: same run
    with pytest.raises(ConfigError, match=r"train\.checkpoint_path.*other settings or data"):
        _train(ckpt, samples, lr=1e-3)
    with pytest.raises(ConfigError, match=r"train\.checkpoint_path"):
        _train(ckpt, _samples(8, seed=2))
    with pytest.raises(ConfigError, match=r"train\.checkpoint_path"):
        _train(ckpt, samples, steps=6)


def test_the_tiny_run_checkpoints_by_default_under_a_key_of_its_settings(tmp_path: Path, monkeypatch) -> None:
    from paperlab.config import compose, from_config
    from paperowl.experiments import ExperimentConfig, tiny_checkpointing

    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path))
    samples = _samples(8, seed=1)

    def path(*overrides: str) -> TrainConfig:
        cfg = from_config(ExperimentConfig, compose("paperowl", ["experiment=tiny", *overrides]).experiment)
        return tiny_checkpointing(cfg, _model(), samples)

    base = path()
    assert (
        base.checkpoint_every == 100 and Path(base.checkpoint_path).parent == tmp_path / "paperowl" / "tiny"
    )
    assert path().checkpoint_path == base.checkpoint_path
    assert path("experiment.train.lr=0.001").checkpoint_path != base.checkpoint_path
    assert (
        path(
            "experiment.train.stop_after=3", f"experiment.train.checkpoint_path={tmp_path}/x.pt"
        ).checkpoint_path
        == f"{tmp_path}/x.pt"
    )


def _metrics(folder: Path) -> dict:
    metrics = json.loads((folder / "results" / "paperowl" / "tiny" / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in ("seconds", "config")}


@pytest.mark.slow
def test_killed_tiny_training_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    run = (
        f"PAPERLAB_RESULTS={{cwd}}/results PAPERLAB_CACHE={{cwd}}/cache exec {sys.executable} -m paperowl "
        "experiment=tiny experiment.metrics=[BLEU-4,CIDEr] experiment.synthetic_train=48 experiment.synthetic_test=8 experiment.max_new_tokens=6 "
        "experiment.model.vision_clip_steps=5 experiment.train.steps=30 experiment.train.batch_size=4 "
        "experiment.train.warmup_steps=2 experiment.train.checkpoint_every=3 "
        "experiment.train.checkpoint_path={cwd}/state.pt"
    )
    result = kill_and_resume(["sh", "-c", run], workdir=tmp_path / "runs", outputs=_metrics, kills=2, seed=1)
    assert result.landed >= 1
    print(result)
