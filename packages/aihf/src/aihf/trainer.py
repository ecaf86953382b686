"""AIHF's implicit variant on TRL: ``AIHFTrainer(DPOTrainer)`` with ``AIHFConfig(DPOConfig)``.

The training set holds two kinds of rows with the same columns (``prompt``, ``chosen``, ``rejected``) and a flag
``is_demo``: preference pairs (``is_demo = False``) and demonstration pairs (``is_demo = True``: ``chosen`` is the
demonstration, ``rejected`` the current policy's own sample for that prompt, regenerated at each AIHF iteration,
self-play style). The loss of a batch is :func:`aihf.losses.implicit_pair_loss`: every pair weighted by its kind's
weight (``w_demo`` / ``w_pref``) and averaged over the batch's pairs, as the official ``reward_learning_AIHF.py``
weighs its mixed batches; the demonstration term is ``demo_form="linear"`` (the ML-IRL gradient, the package's
default: the logistic, self-play form did worse than SFT on the oracle task) or ``"logistic"`` (SPIN's).

The loss goes through TRL's public ``compute_loss``: TRL prepares and collates the rows, adds its fused LM head,
keeps the reference model (or the disabled LoRA adapter) and computes the reference log-probs with the public
``compute_ref_log_probs``; this class computes the policy's summed completion log-probs the same way and applies
the AIHF loss. With ``w_demo = 0`` (or only preference rows) it IS TRL's DPO loss (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import DPOConfig, DPOTrainer

from aihf.losses import DEMO_FORMS, PairLogps, check_weights, implicit_pair_loss

_NON_MODEL_KEYS = ("completion_mask", "ref_chosen_logps", "ref_rejected_logps", "is_demo")


@dataclass
class AIHFConfig(DPOConfig):
    """DPOConfig plus AIHF's two weights and the demonstration term's form (Sec. 3; see :mod:`aihf.losses`)."""

    w_demo: float = field(default=1.0, metadata={"help": "weight of the demonstration (IRL) term"})
    w_pref: float = field(
        default=1.0, metadata={"help": "weight of the preference (Bradley-Terry / DPO) term"}
    )
    demo_form: str = field(
        default="linear", metadata={"help": "demonstration term: linear (ML-IRL gradient) or logistic (SPIN)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self.w_demo, self.w_pref)
        if self.demo_form not in DEMO_FORMS:
            raise ValueError(f"demo_form must be one of {DEMO_FORMS}, got {self.demo_form!r}")
        kinds = self.loss_type if isinstance(self.loss_type, list) else [self.loss_type]
        if kinds != ["sigmoid"]:
            raise ValueError(
                f"AIHFTrainer uses DPO's sigmoid loss for the preference term; got loss_type={self.loss_type!r}"
            )
        if self.ld_alpha is not None:
            raise ValueError("AIHFTrainer sums log-probs over the whole completion; ld_alpha must be None")


class AIHFTrainer(DPOTrainer):
    """DPOTrainer whose loss weighs demonstration and preference pairs (see the module docstring)."""

    loss_is_scaled_for_ga = (
        False  # a mean over the micro-batch: the Trainer divides by the accumulation steps
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        collate = self.data_collator

        def with_flag(examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = collate(examples)
            batch["is_demo"] = torch.tensor([bool(e.get("is_demo", False)) for e in examples])
            return batch

        self.data_collator = with_flag
        self.last_parts: dict[str, float] = {}

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "is_demo" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "is_demo"]

    def pair_logps(self, model: Any, inputs: dict[str, Any]) -> PairLogps:
        """Summed completion log-probs of the batch's pairs under ``model`` and the reference (each ``(n,)``)."""
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        seq_len = completion_mask.size(1) - 1
        logps = model(**model_kwargs, labels=labels, fused_lm_head=True).log_probs[:, -seq_len:].sum(dim=1)
        chosen, rejected = logps.chunk(2, dim=0)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_inputs = {k: v for k, v in inputs.items() if k != "is_demo"}
            ref_chosen, ref_rejected = self.compute_ref_log_probs(
                self.ref_model if self.ref_model is not None else self.model, ref_inputs
            )
        return PairLogps(chosen, rejected, ref_chosen.to(chosen.device), ref_rejected.to(chosen.device))

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        n = inputs["input_ids"].shape[0] // 2
        is_demo = inputs.get("is_demo")
        if is_demo is None:
            is_demo = torch.zeros(n, dtype=torch.bool)
        pairs = self.pair_logps(model, inputs)
        args = self.args
        loss, self.last_parts = implicit_pair_loss(
            pairs, is_demo, self.beta, w_demo=args.w_demo, w_pref=args.w_pref, demo_form=args.demo_form
        )
        mode = "train" if self.model.training else "eval"
        for name, value in self.last_parts.items():
            self._metrics[mode][f"aihf/{name}_term"].append(value)
        margins = self.beta * pairs.margin().detach()
        self._metrics[mode]["rewards/margins"].append(self.accelerator.gather(margins).mean().item())
        return (loss, None) if return_outputs else loss
