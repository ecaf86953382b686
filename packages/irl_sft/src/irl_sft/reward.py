"""The explicit variant, RFT (paper Sec. 4.1, Algorithm 1; official ``run_RFT.sh``) at LLM scale: per stage a
Bradley-Terry reward model (TRL's ``RewardTrainer``) ranks the demonstrations above the policy's generations, then
the policy climbs it with a KL penalty to pi_0 (TRL's ``RLOOTrainer``; the official code uses PPO). Also
:func:`reward_scores`, a sequence-classification model's reward of (prompt, completion) pairs (our reward models
and external judges)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from paperlab.config import require


@dataclass
class RFTConfig:
    """The explicit variant's pieces (``method: rft``; Sec. 4.1, Algorithm 1; official ``run_RFT.sh``)."""

    reward_model: str = (
        ""  # "": a tiny reward model on the policy's tokenizer (model: tiny); else hub name / dir
    )
    rl_beta: float = 0.05  # KL(pi || pi_0) coefficient of the policy step (TRL RLOO's beta)
    num_generations: int = 4  # RLOO samples per prompt
    reward_train: dict[str, Any] = field(default_factory=dict)  # RewardConfig fields
    rl_train: dict[str, Any] = field(default_factory=dict)  # RLOOConfig fields

    def __post_init__(self) -> None:
        require(self.rl_beta >= 0, "rft.rl_beta", self.rl_beta, ">= 0")
        require(
            self.num_generations >= 2, "rft.num_generations", self.num_generations, ">= 2 (leave-one-out)"
        )


@torch.no_grad()
def reward_scores(
    reward: Any,
    tok: Any,
    prompts: list[str],
    completions: list[str],
    *,
    as_pair: bool = False,
    batch: int = 16,
) -> torch.Tensor:
    """A sequence-classification reward model's first logit for each (prompt, completion), in right-padded batches:
    the concatenated text (our reward models, trained on it), or with ``as_pair`` the text pair, truncated to the
    model's length (external judges such as OpenAssistant's, which take question and answer)."""
    side, tok.padding_side = tok.padding_side, "right"
    out = []
    was_training = reward.training
    reward.eval()
    try:
        for s in range(0, len(prompts), batch):
            ps, cs = prompts[s : s + batch], completions[s : s + batch]
            if as_pair:
                enc = tok(ps, cs, return_tensors="pt", padding=True, truncation=True)
            else:
                enc = tok([p + c for p, c in zip(ps, cs, strict=True)], return_tensors="pt", padding=True)
            out.append(reward(**enc.to(reward.device)).logits[:, 0].float().cpu())
    finally:
        tok.padding_side = side
        reward.train(was_training)
    return torch.cat(out)


def rft_stage(
    cfg: Any,
    t: int,
    model: Any,
    tok: Any,
    pairs: list[dict[str, str]],
    stage_dir: Path,
    out: Path,
    prev_reward: Path | None,
    train_kwargs: dict[str, Any],
    complete: Callable[[Any, list[str]], list[str]],
) -> tuple[Any, float, dict[str, float]]:
    """One RFT stage (Algorithm 1): fit the reward model to rank this stage's demonstrations above the current
    policy's generations (Bradley-Terry, TRL's ``RewardTrainer``, continuing from the previous stage's reward model),
    then improve the policy on r_phi with a KL penalty to the starting model pi_0 (TRL's ``RLOOTrainer``; the official
    code uses PPO). Returns the policy, the RL loss and the stage's reward figures: the reward model's accuracy on the
    stage's pairs, and its mean reward of the policy's samples before and after the policy step. ``train_kwargs``:
    the policy's ``TrainingArguments`` fields (the scale's and ``cfg.train``); ``complete(model, prompts)`` makes the
    policy's completions."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer, RLOOConfig, RLOOTrainer

    if prev_reward is not None:
        reward = AutoModelForSequenceClassification.from_pretrained(prev_reward, num_labels=1)
    elif cfg.rft.reward_model:
        reward = AutoModelForSequenceClassification.from_pretrained(cfg.rft.reward_model, num_labels=1)
    else:
        from paperlab.models import tiny_sequence_classifier

        reward = tiny_sequence_classifier(tokenizer=tok, seed=cfg.seed)
    if reward.config.pad_token_id is None:
        reward.config.pad_token_id = tok.pad_token_id
    common = {"save_strategy": "no", "report_to": [], "seed": cfg.seed + t}
    for key in (
        "use_cpu",
        "bf16",
        "activation_checkpointing",
        "ddp_timeout",
    ):  # device settings: the policy's
        if key in train_kwargs:
            common[key] = train_kwargs[key]
    rm_trainer = RewardTrainer(
        model=reward,
        args=RewardConfig(
            output_dir=str(stage_dir / "reward_trainer"),
            max_length=cfg.max_length,
            **{**common, **cfg.rft.reward_train},
        ),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tok,
    )
    rm_trainer.train()
    reward = rm_trainer.model
    prompts = [p["prompt"] for p in pairs]
    r_demo = reward_scores(reward, tok, prompts, [p["chosen"] for p in pairs])
    r_gen = reward_scores(reward, tok, prompts, [p["rejected"] for p in pairs])
    rm_trainer.save_model(str(stage_dir / "reward"))  # main process only
    rm_trainer.accelerator.wait_for_everyone()
    reward = AutoModelForSequenceClassification.from_pretrained(stage_dir / "reward", num_labels=1)
    start = out / "stage-0" / "model" if cfg.model == "tiny" else Path(cfg.model)
    model.config._name_or_path = str(start)  # TRL builds RLOO's KL reference from this path: pi_0, not pi_t
    rl = RLOOTrainer(
        model=model,
        reward_funcs=reward,
        args=RLOOConfig(
            output_dir=str(stage_dir / "rl_trainer"),
            beta=cfg.rft.rl_beta,
            num_generations=cfg.rft.num_generations,
            max_completion_length=cfg.max_new_tokens,
            temperature=cfg.temperature,
            **{**common, **{k: v for k, v in train_kwargs.items() if k not in common}, **cfg.rft.rl_train},
        ),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tok,
        reward_processing_classes=tok,
    )
    resume = any((stage_dir / "rl_trainer").glob("checkpoint-*"))
    result = rl.train(resume_from_checkpoint=True if resume else None)
    rl.save_model(str(stage_dir / "model"))
    after = complete(rl.model, prompts)
    r_after = reward_scores(reward, tok, prompts, after)
    extra = {
        "reward_train_acc": 100.0 * float((r_demo > r_gen).float().mean()),
        "reward_demo": float(r_demo.mean()),
        "reward_before": float(r_gen.mean()),
        "reward_after": float(r_after.mean()),
    }
    return rl.model, float(result.training_loss), extra
