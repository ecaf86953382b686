"""Evaluation of the LLM pipeline (:mod:`aihf.align`) after every AIHF iteration.

- **Reward-model score and win rate against the SFT (starting) model**: the policy and the starting policy answer
  the same held-out prompts (greedy decoding, generation sharded over the ranks with
  :func:`paperlab.scale.map_sharded`); a frozen reward model (the judge, loaded with
  :func:`paperlab.scale.load_for_inference`) scores every (prompt, completion); the win rate counts a tie as half
  a win. The starting policy's completions and scores are computed once and kept in ``eval-sft.json``.
- **lm-eval**: :func:`paperlab.evaluation.run_lm_eval` on the policy when ``lm_eval_tasks`` is set (main process).

The paper's LLM results (Sec. 5) are reward-model scores of the aligned policy on held-out Anthropic-HH prompts;
the win rate against the starting model is the comparison the pipeline reports beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from paperlab.config import require
from paperlab.scale import map_sharded, rank_device

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """``prompts`` + ``judge`` switch the reward-model evaluation on (both set, or both empty); ``lm_eval_tasks``
    switches lm-eval on."""

    prompts: str = ""  # held-out prompts: JSONL path or hub:<name>[:<split>]
    format: str = "columns"  # columns (a "prompt" field) | hh (the prompt of the "chosen" transcript)
    prompt_field: str = "prompt"
    data_dir: str = ""  # hub subset folder (Anthropic/hh-rlhf: helpful-base)
    max_prompts: int = 0  # 0: all
    judge: str = (
        ""  # reward model (hub name or directory, *ForSequenceClassification), or "tiny" (built locally)
    )
    judge_pair_encoding: bool = True  # tokenizer(prompt, completion), as DeBERTa reward models are trained
    judge_max_length: int = 1024
    max_new_tokens: int = 128
    batch_size: int = 16
    lm_eval_tasks: list[str] = field(default_factory=list)
    lm_eval_include_path: str = ""
    lm_eval_limit: float = 0  # examples per task (>= 1) or a fraction (< 1); 0: all
    lm_eval_batch_size: int = 8

    def __post_init__(self) -> None:
        require(self.format in ("columns", "hh"), "eval.format", self.format, "columns or hh")
        require(
            bool(self.prompts) == bool(self.judge),
            "eval.judge",
            self.judge,
            "a reward model together with eval.prompts (or both empty: no judge evaluation)",
        )
        require(self.max_new_tokens >= 1, "eval.max_new_tokens", self.max_new_tokens, ">= 1")
        require(self.batch_size >= 1, "eval.batch_size", self.batch_size, ">= 1")
        require(self.lm_eval_limit >= 0, "eval.lm_eval_limit", self.lm_eval_limit, ">= 0 (0: all)")

    @property
    def judged(self) -> bool:
        return bool(self.prompts)


@torch.no_grad()
def greedy_completions(
    model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int
) -> list[str]:
    """One greedy completion per prompt (left-padded batches, special tokens dropped); the model's mode and the
    tokenizer's padding side are restored afterwards."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ids = model.generate(
                **batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
            )
            out.extend(
                tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            )
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


@torch.no_grad()
def judge_scores(
    judge: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    batch_size: int = 16,
    pair_encoding: bool = True,
    max_length: int = 1024,
) -> list[float]:
    """The reward model's scalar score (``logits[:, 0]``) of each (prompt, completion): encoded as a text pair
    (``pair_encoding``: [CLS] prompt [SEP] completion for DeBERTa reward models) or as ``prompt + completion``."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    device = next(judge.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    out: list[float] = []
    try:
        for start in range(0, len(prompts), batch_size):
            p, c = list(prompts[start : start + batch_size]), list(completions[start : start + batch_size])
            enc_args = (p, c) if pair_encoding else ([a + b for a, b in zip(p, c, strict=True)],)
            batch = tokenizer(
                *enc_args, return_tensors="pt", padding=True, truncation=True, max_length=max_length
            )
            batch = {
                k: v.to(device)
                for k, v in batch.items()
                if k in ("input_ids", "attention_mask", "token_type_ids")
            }
            out.extend(judge(**batch).logits[:, 0].float().cpu().tolist())
    finally:
        tokenizer.padding_side = side
    return out


def win_rate(scores: Sequence[float], base_scores: Sequence[float]) -> float:
    """Share of prompts where the policy's completion scores above the base model's (a tie counts 1/2)."""
    if len(scores) != len(base_scores) or not scores:
        raise ValueError(
            f"win_rate needs two equal, non-empty score lists, got {len(scores)} and {len(base_scores)}"
        )
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(scores, base_scores, strict=True))
    return wins / len(scores)


def load_judge(cfg: EvalConfig, policy_tokenizer: Any, seed: int = 0) -> tuple[Any, Any]:
    """The frozen reward model and its tokenizer: ``"tiny"`` builds a tiny sequence classifier on the policy's
    tokenizer (offline); anything else loads with :func:`paperlab.scale.load_for_inference`."""
    if cfg.judge == "tiny":
        from paperlab.models import tiny_sequence_classifier

        judge = tiny_sequence_classifier(tokenizer=policy_tokenizer, seed=seed + 1000).to(rank_device())
        judge.requires_grad_(False)
        return judge.eval(), policy_tokenizer
    from paperlab.models import load_tokenizer
    from paperlab.scale import load_for_inference

    judge = load_for_inference(cfg.judge, auto_class="AutoModelForSequenceClassification")
    return judge, load_tokenizer(cfg.judge)


def answer_and_score(
    model: Any, tokenizer: Any, prompts: Sequence[str], judge: Any, judge_tokenizer: Any, cfg: EvalConfig
) -> tuple[list[str], list[float]]:
    """Greedy completions of ``model`` and the judge's scores, the prompts sharded over the ranks (every rank gets
    the full lists, in prompt order)."""

    def shard(items: list[str]) -> list[tuple[str, float]]:
        texts = greedy_completions(
            model, tokenizer, items, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
        )
        scores = judge_scores(
            judge,
            judge_tokenizer,
            items,
            texts,
            batch_size=cfg.batch_size,
            pair_encoding=cfg.judge_pair_encoding,
            max_length=cfg.judge_max_length,
        )
        return list(zip(texts, scores, strict=True))

    pairs = map_sharded(shard, list(prompts))
    return [t for t, _ in pairs], [s for _, s in pairs]


def judge_summary(scores: Sequence[float], base_scores: Sequence[float]) -> dict[str, float]:
    """Mean reward of the policy and of the SFT (starting) model, and the policy's win rate against it."""
    return {
        "reward_mean": sum(scores) / len(scores),
        "reward_sft_mean": sum(base_scores) / len(base_scores),
        "win_rate_vs_sft": win_rate(scores, base_scores),
        "prompts": len(scores),
    }


def lm_eval_numbers(model: Any, tokenizer: Any, cfg: EvalConfig) -> dict[str, dict[str, float]]:
    """lm-eval on ``cfg.lm_eval_tasks`` (:func:`paperlab.evaluation.lm_eval_from_config`: main process only)."""
    from paperlab.evaluation import lm_eval_from_config

    return lm_eval_from_config(model, tokenizer, cfg)
