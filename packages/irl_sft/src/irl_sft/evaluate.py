"""Evaluation of every stage model of the LLM pipeline, the work sharded over the ranks.

On ``eval_demos`` held-out demonstrations: the implicit reward r = log pi - log pi_0 (pi_0 = the starting model)
ranks the demonstration above pi_0's own generation for the same prompt (ranking accuracy, the paper's "distinguish
preferred from non-preferred"), and the demonstrations' log-likelihood per token; on preference pairs, the share
whose chosen answer gets the higher implicit reward (the official ``test_reward_accuracy.py``); with a judge, its
mean reward of the policy's completions of the held-out prompts; with ``eval.lm_eval_tasks``, lm-eval's numbers
(:func:`paperlab.evaluation.run_lm_eval`, main process only: the harness does not shard).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from irl_sft.losses import sequence_logps
from paperlab.config import require
from paperlab.scale import map_sharded


@dataclass
class EvalConfig:
    """lm-eval on every stage model (the paper's Open LLM Leaderboard tasks, official ``run_eval.sh``)."""

    lm_eval_tasks: list[str] = field(default_factory=list)  # [] none; lm-eval task names
    lm_eval_include_path: str = ""  # a folder of task YAMLs of one's own ("" none)
    lm_eval_limit: int = 0  # examples per task (0: all)
    lm_eval_num_fewshot: int = -1  # -1: each task's default
    lm_eval_batch_size: int = 8

    def __post_init__(self) -> None:
        require(self.lm_eval_limit >= 0, "eval.lm_eval_limit", self.lm_eval_limit, ">= 0 (0: all)")
        require(self.lm_eval_num_fewshot >= -1, "eval.lm_eval_num_fewshot", self.lm_eval_num_fewshot, ">= -1")
        require(self.lm_eval_batch_size >= 1, "eval.lm_eval_batch_size", self.lm_eval_batch_size, ">= 1")


@torch.no_grad()
def completion_logps(
    model: Any, tok: Any, prompts: list[str], completions: list[str], batch: int = 16
) -> torch.Tensor:
    """Summed log-prob of each completion given its prompt (right-padded batches)."""
    out = []
    was_training = model.training
    model.eval()
    for s in range(0, len(prompts), batch):
        p_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts[s : s + batch]]
        c_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions[s : s + batch]]
        seqs = [p + c for p, c in zip(p_ids, c_ids, strict=True)]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for k, (p, seq) in enumerate(zip(p_ids, seqs, strict=True)):
            ids[k, : len(seq)] = torch.tensor(seq)
            attn[k, : len(seq)] = 1
            mask[k, len(p) : len(seq)] = 1
        ids, attn, mask = (t.to(model.device) for t in (ids, attn, mask))
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
        out.append(sequence_logps(logits.float(), ids, mask).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def sharded_logps(model: Any, tok: Any, prompts: list[str], completions: list[str]) -> torch.Tensor:
    """:func:`completion_logps` with the pairs split over the ranks; the full vector on every rank."""
    pairs = list(zip(prompts, completions, strict=True))

    def shard(part: list[tuple[str, str]]) -> list[float]:
        return completion_logps(model, tok, [p for p, _ in part], [c for _, c in part]).tolist()

    return torch.tensor(map_sharded(shard, pairs), dtype=torch.float32)


def base_scores(
    model: Any, tok: Any, held: dict[str, list[str]], prefs: list[dict[str, str]] | None
) -> dict[str, torch.Tensor]:
    """pi_0's log-probs of what :func:`evaluate` compares (the 0 of the implicit reward)."""
    out = {
        "demo": sharded_logps(model, tok, held["prompt"], held["completion"]),
        "generation": sharded_logps(model, tok, held["prompt"], held["generation"]),
    }
    if prefs:
        prompts = [p["prompt"] for p in prefs]
        for key in ("chosen", "rejected"):
            out[key] = sharded_logps(model, tok, prompts, [p[key] for p in prefs])
    return out


def evaluate(
    model: Any,
    base: dict[str, torch.Tensor],
    held: dict[str, list[str]],
    tok: Any,
    prefs: list[dict[str, str]] | None = None,
    judge: tuple[Any, Any, Any] | None = None,
) -> dict[str, float]:
    """Ranking accuracy of r = log pi - log pi_0 (demo vs pi_0's generation) and demo log-likelihood per token;
    with ``prefs``, the share of preference pairs whose chosen answer gets the higher implicit reward
    (``base["chosen"/"rejected"]`` = pi_0's); with ``judge`` = (reward model, its tokenizer, a function
    ``prompts -> completions`` of the policy), the judge's mean reward of the policy's completions."""
    demo = sharded_logps(model, tok, held["prompt"], held["completion"])
    gen = sharded_logps(model, tok, held["prompt"], held["generation"])
    r_demo, r_gen = demo - base["demo"], gen - base["generation"]
    tokens = sum(len(tok(c, add_special_tokens=False)["input_ids"]) for c in held["completion"])
    out = {
        "ranking_acc": 100.0 * float((r_demo > r_gen).float().mean()),
        "demo_loglik_per_token": float(demo.sum()) / max(tokens, 1),
    }
    if prefs:
        prompts = [p["prompt"] for p in prefs]
        chosen = sharded_logps(model, tok, prompts, [p["chosen"] for p in prefs]) - base["chosen"]
        rejected = sharded_logps(model, tok, prompts, [p["rejected"] for p in prefs]) - base["rejected"]
        out["pref_acc"] = 100.0 * float((chosen > rejected).float().mean())
    if judge is not None:
        from irl_sft.reward import reward_scores

        reward_model, judge_tok, complete = judge
        with torch.random.fork_rng(devices=[]):  # the same draws at every stage; training's RNG untouched
            torch.manual_seed(0)
            samples = complete(held["prompt"])
        out["judge_reward"] = float(
            reward_scores(reward_model, judge_tok, held["prompt"], samples, as_pair=True).mean()
        )
    return out


def lm_eval_scores(cfg: EvalConfig, model: Any, tok: Any) -> dict[str, dict[str, float]]:
    """lm-eval's ``{task: {metric: value}}`` for ``model`` on the main process ({} elsewhere and without tasks)."""
    from paperlab.evaluation import lm_eval_from_config

    return lm_eval_from_config(model, tok, cfg)
