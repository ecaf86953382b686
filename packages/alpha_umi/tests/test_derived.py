"""Trained models are keyed by what they were derived from (``paperlab.io.derived_key``, issue 28 item 1): a changed
sample, setting or start model is retrained, never served the stale run; the tiny base is rebuilt when its shape
or texts change."""

from __future__ import annotations

import json

from alpha_umi.train import StageConfig, TrainConfig, run_key, sft

CPU = {"use_cpu": True, "disable_tqdm": True, "report_to": []}


def _cfg(**args) -> TrainConfig:
    return TrainConfig(max_length=512, batch_size=4, args={**CPU, **args})


def _done(path) -> dict:
    return json.loads((path.parent / "done.json").read_text())


def test_a_finished_run_is_reused_only_for_the_same_samples_settings_and_start(bos_base, tmp_path):
    base, data = bos_base
    samples, stage = data["caller"][:4], StageConfig(1e-3, 1.0, 0.0)
    path = sft(base, samples, stage, _cfg(), tmp_path / "runs", name="caller")
    first = _done(path)["key"]
    stamp = (path.parent / "done.json").stat().st_mtime_ns
    sft(base, samples, stage, _cfg(save_steps=7), tmp_path / "runs", name="caller")  # checkpointing only
    assert (path.parent / "done.json").stat().st_mtime_ns == stamp  # reused
    sft(base, samples, StageConfig(2e-3, 1.0, 0.0), _cfg(), tmp_path / "runs", name="caller")  # another lr
    assert _done(path)["key"] != first
    changed = [*samples[:3], {**samples[3], "target": samples[3]["target"] + " x"}]
    keys = {run_key(base, samples, stage, _cfg()), run_key(base, changed, stage, _cfg())}
    (base / "config.json").write_text((base / "config.json").read_text() + " ")  # the start model changed
    keys.add(run_key(base, samples, stage, _cfg()))
    assert len(keys) == 3


def test_the_tiny_base_is_rebuilt_when_its_shape_changes(tmp_path):
    from alpha_umi.data import role_datasets
    from alpha_umi.experiment import ExperimentConfig, ModelConfig, _base
    from alpha_umi.world import make_split

    data = role_datasets([t for _, t in make_split(2, seed=0)])

    def hidden(size: int) -> int:
        cfg = ExperimentConfig(model=ModelConfig(layers=1, hidden=size, heads=2, vocab_size=400))
        return json.loads((_base(cfg, data, tmp_path) / "config.json").read_text())["hidden_size"]

    assert (hidden(16), hidden(32), hidden(32)) == (16, 32, 32)
