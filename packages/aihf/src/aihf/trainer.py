"""AIHF's implicit variant on TRL: ``AIHFTrainer(DPOTrainer)`` with ``AIHFConfig(DPOConfig)``.

The training set holds two kinds of rows with the same columns (``prompt``, ``chosen``, ``rejected``) and a flag
``is_demo``: preference pairs (``is_demo = False``) and demonstration pairs (``is_demo = True``: ``chosen`` is the
demonstration, ``rejected`` the current policy's own sample for that prompt, regenerated at each AIHF iteration,
self-play style). The loss of a batch is

    w_demo * DPO-loss(demonstration rows) + w_pref * DPO-loss(preference rows)

each term computed by TRL's own DPO loss (``loss_type="sigmoid"``) on its rows, i.e. :func:`aihf.losses.implicit_loss`
with ``demo_form="logistic"``. With ``w_demo = 0`` it IS TRL's DPO loss on the preference rows (tested); with
``w_pref = 0`` it is SPIN's loss. A batch without rows of a weighted kind contributes nothing for that term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import DPOConfig, DPOTrainer

from aihf.losses import check_weights


@dataclass
class AIHFConfig(DPOConfig):
    """DPOConfig plus AIHF's two weights (Sec. 3 of the paper; see :mod:`aihf.losses`)."""

    w_demo: float = field(default=1.0, metadata={"help": "weight of the demonstration (IRL) term"})
    w_pref: float = field(
        default=1.0, metadata={"help": "weight of the preference (Bradley-Terry / DPO) term"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self.w_demo, self.w_pref)
        kinds = self.loss_type if isinstance(self.loss_type, list) else [self.loss_type]
        if kinds != ["sigmoid"]:
            raise ValueError(
                f"AIHFTrainer uses DPO's sigmoid loss for both terms; got loss_type={self.loss_type!r}"
            )


def _rows(inputs: dict[str, Any], index: torch.Tensor, n: int) -> dict[str, Any]:
    """The sub-batch of pairs ``index``: rows ``index`` (chosen) and ``index + n`` (rejected) of the 2n-row tensors."""
    both = torch.cat([index, index + n])
    out = {}
    for key, value in inputs.items():
        if torch.is_tensor(value) and value.shape[:1] == (2 * n,):
            out[key] = value[both]
        elif torch.is_tensor(value) and value.shape[:1] == (n,):
            out[key] = value[index]
        else:
            out[key] = value
    return out


class AIHFTrainer(DPOTrainer):
    """DPOTrainer whose loss weighs demonstration and preference rows (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        collate = self.data_collator

        def with_flag(examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = collate(examples)
            batch["is_demo"] = torch.tensor([bool(e.get("is_demo", False)) for e in examples])
            return batch

        self.data_collator = with_flag

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "is_demo" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "is_demo"]

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        is_demo = inputs.pop("is_demo", None)
        n = inputs["input_ids"].shape[0] // 2
        if is_demo is None:
            is_demo = torch.zeros(n, dtype=torch.bool)
        is_demo = is_demo.to(inputs["input_ids"].device).bool()
        total = None
        outputs = None
        for weight, mask in ((self.args.w_demo, is_demo), (self.args.w_pref, ~is_demo)):
            index = mask.nonzero().flatten()
            if weight == 0 or index.numel() == 0:
                continue
            result = super()._compute_loss(model, _rows(inputs, index, n), return_outputs)
            loss, out = result if return_outputs else (result, None)
            total = weight * loss if total is None else total + weight * loss
            outputs = out if out is not None else outputs
        if total is None:  # no row of a weighted kind in this batch: a zero loss that keeps the graph
            total = sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
        return (total, outputs) if return_outputs else total
