"""Reward models for the inference mode: anything with ``score(prompts, responses) -> list[float]``.

* :class:`ModelReward` -- a sequence classifier from the hub or a folder (a reward model with one logit, e.g. the
  paper-scale config's), reading the prompt and response through its chat template when it has one, else as the
  tokenizer's *pair* ``tokenizer(prompt, response)`` (``[CLS] prompt [SEP] response [SEP]``, token type 1 on the
  response): how OpenAssistant's DeBERTa-v3 reward models were trained and are meant to be called (model card);
* :class:`RuleReward` -- a Python scoring rule wrapped as a reward model (the tiny world's exact checker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from paperlab.config import ConfigError


@dataclass
class RuleReward:
    rule: Callable[[str, str], float]

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return [float(self.rule(p, r)) for p, r in zip(prompts, responses, strict=True)]


class ModelReward:
    """A one-logit ``AutoModelForSequenceClassification`` reward model; batches of ``batch_size``."""

    def __init__(
        self, model, tokenizer, *, batch_size: int = 8, max_length: int = 2048, as_pair: bool | None = None
    ) -> None:
        if getattr(model.config, "num_labels", 1) != 1:
            raise ConfigError(
                f"fusion.reward: the reward model must have one output (num_labels=1), got {model.config.num_labels}"
            )
        self.model, self.tokenizer, self.batch_size, self.max_length = (
            model.eval(),
            tokenizer,
            batch_size,
            max_length,
        )
        #: pair encoding (``None``: when the tokenizer has no chat template, as encoder reward models do not)
        self.as_pair = not getattr(tokenizer, "chat_template", None) if as_pair is None else as_pair

    @classmethod
    def load(cls, name_or_path: str, **kwargs) -> ModelReward:
        """The reward model frozen on this rank's device (:func:`paperlab.scale.load_for_inference`)."""
        from paperlab.models import load_tokenizer
        from paperlab.scale import load_for_inference

        model = load_for_inference(name_or_path, auto_class="AutoModelForSequenceClassification")
        return cls(model, load_tokenizer(name_or_path), **kwargs)

    def _encode(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, torch.Tensor]:
        options = {"return_tensors": "pt", "padding": True, "truncation": True, "max_length": self.max_length}
        if self.as_pair:
            return self.tokenizer(list(prompts), list(responses), **options)
        texts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
            )
            if getattr(self.tokenizer, "chat_template", None)
            else p + r
            for p, r in zip(prompts, responses, strict=True)
        ]
        return self.tokenizer(texts, add_special_tokens=False, **options)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        out: list[float] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            batch = self._encode(prompts[start:end], responses[start:end])
            logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
            out.extend(logits[:, 0].float().cpu().tolist())
        return out
