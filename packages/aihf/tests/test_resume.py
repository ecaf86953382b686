"""Interruption (issue 28): an AIHF run stopped mid-pass (after a Trainer checkpoint) and between iterations, then
rerun, ends where an uninterrupted run ends, without retraining a finished step; the command line killed with
SIGTERM at random points and rerun gives the uninterrupted run's results."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from aihf.align import AlignConfig, run_align
from aihf.llm_data import DataConfig
from aihf.llm_eval import EvalConfig
from paperlab.testing import kill_and_resume

DATA = Path(__file__).parents[1] / "src" / "aihf" / "data"
TRAIN = {
    "learning_rate": 3e-3,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 4,  # 16 rows: 4 steps per pass
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 2,
    "use_cpu": True,
}


def _cfg(iterations: int) -> AlignConfig:
    return AlignConfig(
        data=DataConfig(demos="aihf:tiny_demos.jsonl", prefs="aihf:tiny_prefs.jsonl"),
        iterations=iterations,
        beta=0.5,
        max_new_tokens=6,
        eval=EvalConfig(prompts="aihf:tiny_eval_prompts.jsonl", judge="tiny", judge_pair_encoding=False),
        train=TRAIN,
    )


def _weights(folder: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(folder / "model.safetensors")
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].float().numpy().tobytes())
    return digest.hexdigest()


def _outputs(out: Path, iterations: int) -> list:
    done = [json.loads((out / f"iter-{k}" / "done.json").read_text()) for k in range(1, iterations + 1)]
    return [done, _weights(out / f"iter-{iterations}")]


class _Steps:
    """A Trainer callback that counts optimizer steps and stops the run (KeyboardInterrupt, as Ctrl-C) right after
    the checkpoint of step ``stop_at`` of the first pass it sees."""

    def __init__(self, stop_at: int | None) -> None:
        self.stop_at, self.steps = stop_at, 0

    def callback(self):
        from transformers import TrainerCallback

        owner = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                owner.steps += 1

            def on_save(self, args, state, control, **kwargs):
                if owner.stop_at is not None and state.global_step == owner.stop_at:
                    owner.stop_at = None
                    raise KeyboardInterrupt

        return Callback()


@pytest.fixture()
def count_steps(monkeypatch):
    import aihf.trainer

    box: dict[str, _Steps] = {}
    init = aihf.trainer.AIHFTrainer.__init__

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.add_callback(box["steps"].callback())

    monkeypatch.setattr(aihf.trainer.AIHFTrainer, "__init__", patched)

    def use(stop_at: int | None) -> _Steps:
        box["steps"] = _Steps(stop_at)
        return box["steps"]

    return use


@pytest.mark.slow
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, count_steps) -> None:
    steps = count_steps(None)
    run_align(_cfg(2), tmp_path / "whole")
    expected, whole_steps = _outputs(tmp_path / "whole", 2), steps.steps
    assert whole_steps == 8

    out = tmp_path / "parts"
    steps = count_steps(stop_at=2)  # stopped in the middle of iteration 1's pass, after its checkpoint
    with pytest.raises(KeyboardInterrupt):
        run_align(_cfg(2), out)
    run_align(_cfg(1), out)  # resumes the pass at step 2, then stops after iteration 1
    run_align(_cfg(2), out)  # iteration 2 only
    assert _outputs(out, 2) == expected
    assert steps.steps == whole_steps  # no step was trained twice


@pytest.mark.slow
def test_cli_killed_and_rerun_gives_the_uninterrupted_results(tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "aihf",
        "experiment=align_tiny",
        "+align.train.save_strategy=steps",
        "+align.train.save_steps=2",
    ]
    result = kill_and_resume(
        args,
        workdir=tmp_path,
        outputs=lambda cwd: _outputs(cwd / "results" / "aihf" / "align_tiny", 2),
        kills=2,
        seed=7,  # kill points: after write 3 (iteration 1 trained, not yet marked done) and 6 (the same in 2)
        env={"PAPERLAB_RESULTS": "results", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.landed >= 1
