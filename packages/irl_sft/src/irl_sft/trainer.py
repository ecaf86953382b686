"""IRFT's stage loss on TRL: ``IRFTTrainer(DPOTrainer)`` with ``IRFTConfig(DPOConfig)``.

A stage's training set has TRL's preference columns: ``prompt``, ``chosen`` = the demonstration y, ``rejected`` =
the current model's own generation y~ for that prompt (made at the stage start, :mod:`irl_sft.stages`), and the
trainer's ``ref_model`` is pi_t, the model at the stage start. The ``compute_loss`` override (TRL's public hook) computes the completion log-probs
of both models with :func:`irl_sft.losses.sequence_logps` and applies :func:`irl_sft.losses.irft_loss` (paper
Sec. 4.2; SPIN's loss when there is one stage and pi_t is the SFT model). It equals TRL's own sigmoid DPO loss on
the same batch (tested), so the override is there to make the paper's equation the code path, not to change it.

TRL's other DPO variants (hinge, IPO, f-divergences, length-desensitised weights, precomputed reference log-probs)
do not apply: pi_t changes each stage, so its log-probs are computed on the fly; :class:`IRFTConfig` refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import DPOConfig, DPOTrainer

from irl_sft.losses import irft_loss, irft_margin, sequence_logps


@dataclass
class IRFTConfig(DPOConfig):
    """DPOConfig restricted to IRFT's loss: sigmoid, reverse KL, reference log-probs computed on the fly."""

    def __post_init__(self) -> None:
        super().__post_init__()
        kinds = self.loss_type if isinstance(self.loss_type, list) else [self.loss_type]
        problems = []
        if kinds != ["sigmoid"]:
            problems.append(f"loss_type={self.loss_type!r} (IRFT's loss is the sigmoid one)")
        if getattr(self, "f_divergence_type", "reverse_kl") not in ("reverse_kl", None):
            problems.append(f"f_divergence_type={self.f_divergence_type!r} (expected reverse_kl)")
        if getattr(self, "ld_alpha", None) is not None:
            problems.append(f"ld_alpha={self.ld_alpha} (expected None)")
        if getattr(self, "precompute_ref_log_probs", False):
            problems.append("precompute_ref_log_probs=True (the reference pi_t changes every stage)")
        if problems:
            raise ValueError("IRFTConfig: unsupported " + "; ".join(problems))


class IRFTTrainer(DPOTrainer):
    """DPOTrainer whose loss is :func:`irl_sft.losses.irft_loss` (module docstring); needs ``ref_model`` = pi_t."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("ref_model") is None:
            raise ValueError("IRFTTrainer needs ref_model: the model at the stage start (pi_t)")
        super().__init__(*args, **kwargs)

    def completion_logps(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """Summed log-probs of the completion tokens of every row of a collated batch (chosen rows, then rejected)."""
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        return sequence_logps(out.logits, inputs["input_ids"], inputs["completion_mask"])

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """TRL's public loss hook: the IRFT loss of a collated batch (a mean over its pairs, as TRL's DPO loss; the
        Trainer scales it for gradient accumulation)."""
        mode = "train" if self.model.training else "eval"
        policy_demo, policy_gen = self.completion_logps(model, inputs).chunk(2)
        with torch.no_grad():
            ref_demo, ref_gen = self.completion_logps(self.ref_model, inputs).chunk(2)
        loss = irft_loss(policy_demo, policy_gen, ref_demo, ref_gen, self.beta)
        margin = self.beta * irft_margin(policy_demo, policy_gen, ref_demo, ref_gen).detach()
        gather = self.accelerator.gather_for_metrics
        self._metrics[mode]["rewards/margins"].append(gather(margin).mean().item())
        self._metrics[mode]["rewards/accuracies"].append(gather((margin > 0).float()).mean().item())
        self._metrics[mode]["logps/chosen"].append(gather(policy_demo.detach()).mean().item())
        self._metrics[mode]["logps/rejected"].append(gather(policy_gen.detach()).mean().item())
        return (loss, None) if return_outputs else loss
