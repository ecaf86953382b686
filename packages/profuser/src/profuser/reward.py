"""Reward models for the inference mode: anything with ``score(prompts, responses) -> list[float]``.

* :class:`ModelReward` -- a sequence classifier from the hub or a folder (a reward model with one logit, e.g. the
  paper-scale config's), reading the prompt and response through its chat template when it has one;
* :class:`RuleReward` -- a Python scoring rule wrapped as a reward model (the tiny world's exact checker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class RuleReward:
    rule: Callable[[str, str], float]

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return [float(self.rule(p, r)) for p, r in zip(prompts, responses, strict=True)]


class ModelReward:
    """A one-logit ``AutoModelForSequenceClassification`` reward model; batches of ``batch_size``."""

    def __init__(self, model, tokenizer, *, batch_size: int = 8, max_length: int = 2048) -> None:
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(
                f"reward model must have one output (num_labels=1), got {model.config.num_labels}"
            )
        self.model, self.tokenizer, self.batch_size, self.max_length = (
            model.eval(),
            tokenizer,
            batch_size,
            max_length,
        )

    @classmethod
    def load(cls, name_or_path: str, **kwargs) -> ModelReward:
        from transformers import AutoModelForSequenceClassification

        from paperlab.device import pick_device, pick_dtype
        from paperlab.models import load_tokenizer

        device = pick_device("auto")
        model = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, dtype=pick_dtype("auto", device)
        )
        return cls(model.to(device), load_tokenizer(name_or_path), **kwargs)

    def _text(self, prompt: str, response: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                tokenize=False,
            )
        return prompt + response

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        out: list[float] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(prompts), self.batch_size):
            texts = [
                self._text(p, r)
                for p, r in zip(
                    prompts[start : start + self.batch_size],
                    responses[start : start + self.batch_size],
                    strict=True,
                )
            ]
            batch = self.tokenizer(
                texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=False,
            )
            logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
            out.extend(logits[:, 0].float().cpu().tolist())
        return out
