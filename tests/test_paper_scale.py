"""Across packages: every package with ``<name>.scale.dry_run_specs`` describes each of its paper experiments, the
launch each names is one of the shipped files, and the GPU smoke script runs every paper training step at tiny
shapes on the CPU (what ``make gpu-smoke`` runs at full shape on a GPU)."""

from __future__ import annotations

import importlib.util
import math

import pytest

from paperlab.scale import LAUNCHES
from paperlab.smoke import package_specs, paper_experiments, run

PACKAGES = ["profuser", "aihf", "irl_sft", "alpha_umi"]


def test_the_four_llm_packages_have_dry_runs():
    found = [p for p in PACKAGES if importlib.util.find_spec(f"{p}.scale") is not None]
    assert found == PACKAGES


@pytest.mark.parametrize("package", PACKAGES)
def test_every_paper_experiment_describes_its_steps(package):
    experiments = paper_experiments(package)
    assert experiments, f"{package} ships no paper experiment"
    for exp in experiments:
        specs = package_specs(package, exp)
        assert specs, f"{package} experiment={exp}: no step"
        for spec in specs:
            assert spec.scale.launch in LAUNCHES
            assert spec.scale.gpu_memory_gib > 0 and spec.seq_len >= 128
            assert spec.model.source, f"{spec.model.name}: the architecture file cites no source"
        assert any(s.train for s in specs), f"{package} experiment={exp}: no training step"


@pytest.mark.slow
def test_gpu_smoke_script_runs_every_package_at_tiny_shapes():
    rows = run(PACKAGES, tiny=True, steps=2, estimate=False, max_specs=1)
    assert {r["package"] for r in rows} == set(PACKAGES)
    for r in rows:
        assert r["steps_per_s"] > 0 and math.isfinite(r["loss"]), r
