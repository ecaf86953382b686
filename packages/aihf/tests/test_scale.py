"""The paper config at real shape (aihf.scale.dry_run_specs + paperlab.dryrun): Pythia-1.4B, DDP on 8 x A100-80GB,
bf16-mixed, RMSprop, with the frozen reference and reward-model judge: it fits, and the tracked numbers agree with
the analytic count; every hub model of the paper config has an architecture file."""

from __future__ import annotations

import pytest

from aihf.scale import dry_run_specs, shape_of
from paperlab.config import ConfigError, compose

GIB = 2**30


def _n_params(shape) -> int:
    import torch

    from paperlab.dryrun import _build

    with torch.device("meta"):
        return sum(p.numel() for p in _build(shape, torch.bfloat16).parameters())


def test_specs_follow_the_paper_config() -> None:
    (spec,) = dry_run_specs(compose("aihf", ["experiment=paper"]))
    assert (
        spec.model.name == "EleutherAI/pythia-1.4b"
        and spec.scale.launch == "ddp"
        and spec.scale.num_gpus == 8
    )
    assert (spec.batch_size, spec.seq_len, spec.optimizer) == (4, 512, "rmsprop")  # 2 pairs = 4 sequences
    assert [f.name for f in spec.frozen] == [
        "EleutherAI/pythia-1.4b",
        "OpenAssistant/reward-model-deberta-v3-large-v2",
    ]
    assert (spec.eval_batch_size, spec.eval_prompt_len, spec.eval_new_tokens) == (32, 384, 128)
    assert spec.tokens_per_step == 4 * 512 * 8
    with pytest.raises(ConfigError, match="no architecture file"):
        shape_of("EleutherAI/pythia-6.9b")
    with pytest.raises(ConfigError, match="kind: align"):
        dry_run_specs(compose("aihf", ["experiment=oracle"]))


@pytest.mark.slow
def test_paper_dry_run_fits_and_matches_the_analytic_count() -> None:
    from paperlab.dryrun import check_fits, dry_run

    (spec,) = dry_run_specs(compose("aihf", ["experiment=paper"]))
    report = dry_run(spec)
    check_fits(report)
    n = report.n_params
    assert n == pytest.approx(1.4146e9, rel=0.01)  # Pythia-1.4B (1,414,647,808 parameters)
    t = report.train_gib
    assert t["parameters"] == pytest.approx(n * 4 / GIB, rel=0.01)  # fp32 master weights, DDP: not sharded
    assert t["gradients"] == pytest.approx(n * 4 / GIB, rel=0.01)
    assert n * 4 / GIB <= t["optimizer"] <= 1.15 * n * 4 / GIB  # RMSprop: one fp32 state per weight
    frozen = sum(_n_params(s) for s in spec.frozen) * 2 / GIB  # bf16 reference + judge
    assert t["frozen"] == pytest.approx(frozen, rel=0.01)
    assert report.peak_gib <= 80 and report.eval_gib["total"] > t["parameters"]
