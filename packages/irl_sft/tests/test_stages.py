"""The tiny task and the stage loop: metrics move the right way, and an interrupted run resumes to the same result."""

from __future__ import annotations

import pytest
import torch

from irl_sft.methods import MethodConfig, evaluate, train
from irl_sft.tiny import TaskConfig, bigram_counts, make_task
from paperlab.config import ConfigError


@pytest.fixture(scope="module")
def task():
    return make_task(TaskConfig(n_demo=64, n_heldout=64, pretrain_steps=150), cache=False)


def test_base_model_learned_language_a_not_style_b(task) -> None:
    start = evaluate(task.base, task, n_gen=500)
    assert (
        start["ranking_acc"] == 0.0
    )  # r = log pi - log pi_base is 0 for the base itself: no pair ranked right
    counts = bigram_counts(task.demos, task.cfg.vocab)
    assert counts.sum() == pytest.approx(1.0) and counts.shape == (task.cfg.vocab + 1, task.cfg.vocab)


def test_sft_moves_toward_the_demonstrations(task) -> None:
    start = evaluate(task.base, task, n_gen=500)
    _, history = train("SFT", task, MethodConfig(steps=60, lr=3e-3))
    end = history[-1]
    assert end["demo_loglik_per_token"] > start["demo_loglik_per_token"] + 0.1
    assert end["ranking_acc"] > 70.0


@pytest.mark.parametrize(("method", "stop_after"), [("IRFT", 20), ("IRFT", 10), ("RFT", 10)])
def test_interrupted_stage_loop_resumes_to_the_same_result(task, tmp_path, method, stop_after) -> None:
    """Stopped at a stage end (step 20 of 2 stages x 20) or mid-stage (step 10), then resumed from the file."""
    cfg = MethodConfig(steps=40, lr=3e-3, beta=5.0, rl_samples=8, reward_steps=5)
    full, history_full = train(method, task, cfg, T=2, seed=3)
    ckpt = tmp_path / "run.pt"
    _, partial = train(method, task, cfg, T=2, seed=3, checkpoint=ckpt, stop_after=stop_after)
    assert partial[-1]["step"] == stop_after
    resumed, history = train(method, task, cfg, T=2, seed=3, checkpoint=ckpt)
    assert [h["step"] for h in history] == [0, 10, 20, 30, 40]
    assert [h["stage"] for h in history] == [0, 0, 1, 1, 2]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert history == history_full


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"task\.n_demo=0"):
        TaskConfig(n_demo=0)
    with pytest.raises(ConfigError, match=r"method\.beta=0"):
        MethodConfig(beta=0.0)
    with pytest.raises(ValueError, match="unknown method 'DPO'"):
        train("DPO", None, MethodConfig())  # type: ignore[arg-type]
