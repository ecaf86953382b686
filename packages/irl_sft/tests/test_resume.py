"""Interruption (issue 28): an IRFT run stopped between stages and rerun ends with the weights and metrics of an
uninterrupted run (each stage's generations are drawn from its own seed), and the command line killed with SIGTERM
at random points and rerun gives the uninterrupted run's results. Stopping mid-stage (a Trainer checkpoint) is
covered in test_llm.py."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from irl_sft.data import DataConfig
from irl_sft.stages import LLMConfig, run_llm
from paperlab.testing import kill_and_resume

TRAIN = {"learning_rate": 1e-3, "num_train_epochs": 1, "per_device_train_batch_size": 8, "use_cpu": True}


def _weights(folder: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(folder / "model.safetensors")
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].float().numpy().tobytes())
    return digest.hexdigest()


def _outputs(out: Path, stages: int) -> list:
    done = [json.loads((out / f"stage-{t}" / "done.json").read_text()) for t in range(1, stages + 1)]
    return [done, _weights(out / f"stage-{stages}" / "model")]


@pytest.mark.slow
def test_stopped_between_stages_and_resumed_equals_uninterrupted(tmp_path) -> None:
    cfg = LLMConfig(
        data=DataConfig(demos="synthetic", eval_demos=8),
        stages=2,
        prompts_per_stage=32,
        max_length=48,
        max_new_tokens=8,
        train=TRAIN,
    )
    whole = run_llm(cfg, tmp_path / "whole")
    run_llm(replace(cfg, stages=1), tmp_path / "parts")  # stopped after stage 1 (more stages can follow)
    parts = run_llm(cfg, tmp_path / "parts")
    assert _outputs(tmp_path / "parts", 2) == _outputs(tmp_path / "whole", 2)
    assert parts["history"] == whole["history"]


@pytest.mark.slow
def test_cli_killed_and_rerun_gives_the_uninterrupted_results(tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "irl_sft",
        "experiment=llm_tiny",
        "llm.prompts_per_stage=32",
        "llm.data.eval_demos=8",
        "llm.train.logging_steps=1",
        "+llm.train.save_strategy=steps",
        "+llm.train.save_steps=2",
    ]
    result = kill_and_resume(
        args,
        workdir=tmp_path,
        outputs=lambda cwd: _outputs(cwd / "results" / "irl_sft" / "llm_tiny", 2),
        kills=2,
        seed=1,
        env={"PAPERLAB_RESULTS": "results", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.landed >= 1
