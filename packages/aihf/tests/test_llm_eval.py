"""The LLM pipeline's evaluation step (aihf.llm_eval): reward-model scores and win rate against the SFT model by
hand on a judge whose scores are known; the tiny experiment end to end with the judge (the numbers it records are
the judge's scores of the completions it saved); lm-eval on a local task file, offline."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from aihf.llm_eval import EvalConfig, judge_scores, judge_summary, win_rate
from paperlab.config import ConfigError, compose
from paperlab.models import tiny_model_and_tokenizer


class CountJudge(torch.nn.Module):
    """A reward model whose score is the number of times the token ``good`` appears (pad excluded)."""

    def __init__(self, good_id: int) -> None:
        super().__init__()
        self.good_id = good_id
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask, **kwargs):
        hits = ((input_ids == self.good_id) & attention_mask.bool()).sum(-1, keepdim=True).float()
        return SimpleNamespace(logits=hits + self.dummy)


def test_judge_scores_and_win_rate_by_hand() -> None:
    _, tok = tiny_model_and_tokenizer(["good good bad good bad"] * 4, vocab_size=64)
    good = tok.convert_tokens_to_ids("g")  # one "g" per " good", none in "bad"
    judge = CountJudge(good)
    prompts = ["bad", "bad", "bad", "bad"]
    policy = [" good good", " good", " bad", " good good good"]
    base = [" good", " good", " good good", " bad"]
    scores = judge_scores(judge, tok, prompts, policy, batch_size=3, pair_encoding=False)
    base_scores = judge_scores(judge, tok, prompts, base, batch_size=2, pair_encoding=False)
    assert scores == [2.0, 1.0, 0.0, 3.0] and base_scores == [1.0, 1.0, 2.0, 0.0]
    assert win_rate(scores, base_scores) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    summary = judge_summary(scores, base_scores)
    assert summary == pytest.approx(
        {"reward_mean": 1.5, "reward_sft_mean": 1.0, "win_rate_vs_sft": 0.625, "prompts": 4}
    )
    with pytest.raises(ValueError, match="equal"):
        win_rate([1.0], [])
    with pytest.raises(ConfigError, match=r"eval\.judge"):
        EvalConfig(prompts="p.jsonl")


def test_tiny_pipeline_evaluates_every_iteration_with_the_judge(tmp_path) -> None:
    """align_tiny: 2 iterations, each with reward score and win rate vs the starting model on 6 held-out prompts;
    the recorded numbers are the tiny judge's scores of the saved completions, re-scored here."""
    from aihf.align import AlignConfig, run_align
    from aihf.llm_eval import load_judge
    from paperlab.config import from_config

    cfg = from_config(AlignConfig, compose("aihf", ["experiment=align_tiny"]).align, where="align")
    metrics = run_align(cfg, tmp_path / "run")
    assert [h["iteration"] for h in metrics["history"]] == [1, 2]
    sft = json.loads((tmp_path / "run" / "eval-sft.json").read_text())
    assert len(sft["prompts"]) == 6
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "iter-2")
    judge, judge_tok = load_judge(cfg.eval, tok, cfg.seed)
    for h in metrics["history"]:
        saved = json.loads((tmp_path / "run" / f"iter-{h['iteration']}" / "eval.json").read_text())
        again = judge_scores(judge, judge_tok, saved["prompts"], saved["completions"], pair_encoding=False)
        assert again == pytest.approx(saved["scores"], abs=1e-5)
        assert h["eval"]["reward_mean"] == pytest.approx(sum(again) / 6, abs=1e-5)
        assert h["eval"]["win_rate_vs_sft"] == pytest.approx(win_rate(again, sft["scores"]), abs=1e-9)
    md = (tmp_path / "run" / "results.md").read_text()
    assert "win_rate_vs_sft" in md


ROWS = [
    {"question": "the cat sat on the", "choices": [" mat", " sun"], "label": 0},
    {"question": "a dog", "choices": [" barked", " the"], "label": 0},
    {"question": "the sun", "choices": [" rose", " mat"], "label": 0},
]


@pytest.mark.slow
def test_lm_eval_runs_on_a_local_task_offline(tmp_path) -> None:
    """eval.lm_eval_tasks with a local task file (tiny JSONL + task YAML): lm_eval's accuracy of the tiny policy
    equals the argmax of its log-likelihoods over the 3 items."""
    from aihf.llm_eval import lm_eval_numbers
    from paperlab.testing import choice_accuracy, write_choice_task

    model, tok = tiny_model_and_tokenizer(seed=0)
    cfg = EvalConfig(
        lm_eval_tasks=["aihf_tiny_mc"],
        lm_eval_include_path=str(write_choice_task(tmp_path, "aihf_tiny_mc", ROWS)),
        lm_eval_batch_size=2,
    )
    out = lm_eval_numbers(model, tok, cfg)
    # lm-eval's number is the policy's own choice by log-likelihood, computed directly
    assert out["aihf_tiny_mc"]["acc"] == choice_accuracy(model, tok, ROWS)
