"""The LM fine-tuned together with its controller (the paper's ADORE: "fine-tunes the LLM and the controller").

The controller decides, from token ids and positions alone (its own frozen copy of the embeddings), what to release
and what to rebuild, so the cache a query sees at step t is a function of the sequence, the controller and the
budget. :func:`decode_slots` runs the release / rebuild decode once per training sequence and records every K/V it
computed as a slot (the tokens, then each rebuilt copy, recomputed under the cache of its step) with what it attended
(:func:`adore.decode.run_sequence`'s ``slots``); one parallel forward over the slots under that mask gives the
decode's logits exactly (tested), so :func:`finetune_lm` trains a copy of the LM on the decode itself at the cost of
one forward per batch (the paper: training at O(n^2) cost, decoding at O(budget)), the loss on the scored tokens.

Reconstructions (the paper's training recipe is not published in what we could read; see the README's "Choices"):
the controller is trained first on the frozen LM's oracle labels and kept fixed while the LM adapts (a two-stage
schedule rather than a joint loss: the controller reads token ids and positions, so its decisions, and the slots,
do not change as the LM trains); every weight of the tiny LM is trained (LoRA through ``peft`` is the paper-scale
path, ``finetune.lora_rank``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adore.decode import run_sequence
from adore.registry import manual
from adore.tasks import SEP, checkpoint_finished, fit_lm
from paperlab.config import require
from paperlab.io import load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    steps: int = 600  # 0: no fine-tuning (the frozen-LM ablation only)
    batch_size: int = 32
    lr: float = 1e-3
    sequences: int = 1024  # training sequences whose decode visibility is recorded (seed + 3)
    lora_rank: int = (
        0  # > 0: LoRA adapters (peft) on the attention and MLP projections instead of every weight
    )
    policy: str = "adore+rebuild"  # the method whose cache the LM is fine-tuned under

    def __post_init__(self) -> None:
        require(self.steps >= 0, "finetune.steps", self.steps, ">= 0")
        require(self.batch_size >= 1, "finetune.batch_size", self.batch_size, ">= 1")
        require(self.lr > 0, "finetune.lr", self.lr, "> 0")
        require(self.sequences >= 1, "finetune.sequences", self.sequences, ">= 1")
        require(self.lora_rank >= 0, "finetune.lora_rank", self.lora_rank, ">= 0")
        require(
            self.policy in ("adore", "adore+rebuild"),
            "finetune.policy",
            self.policy,
            "adore or adore+rebuild",
        )


@torch.no_grad()
def decode_slots(
    model: Any, sequences: torch.Tensor, controller: Any, budget: int, rebuild: int, context: int, policy: str
) -> list[dict[str, torch.Tensor]]:
    """For each sequence (prompt up to the separator prefilled), the slots of its decode under ``policy`` at
    ``budget`` tokens (:func:`adore.decode.run_sequence`)."""
    method, dcfg, rebuild_controller = manual(policy, budget, controller, rebuild, context)
    out = []
    for ids in sequences:
        dcfg.prefill = int((ids == SEP).nonzero()[0]) + 1
        out.append(
            run_sequence(model, ids, method, dcfg, controller=rebuild_controller, record=True)["slots"]
        )
    return out


def additive_mask(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(N, 1, S, S)``: 0 where visible, the dtype's minimum elsewhere."""
    mask = torch.zeros(visible.shape, dtype=dtype)
    mask.masked_fill_(~visible, torch.finfo(dtype).min)
    return mask[:, None]


def pad_slots(
    slots: list[dict[str, torch.Tensor]], loss_mask: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids, loss mask, additive attention mask, position ids)`` of a batch of slot sets, padded to the longest
    (a padding slot sees only itself and is never scored)."""
    width = max(s["ids"].numel() for s in slots)
    b, t = len(slots), loss_mask.shape[1]
    ids = torch.zeros(b, width, dtype=torch.long)
    positions = torch.zeros(b, width, dtype=torch.long)
    visible = torch.eye(width, dtype=torch.bool).repeat(b, 1, 1)
    mask = torch.zeros(b, width, dtype=torch.bool)
    mask[:, :t] = loss_mask
    for i, s in enumerate(slots):
        k = s["ids"].numel()
        ids[i, :k], positions[i, :k], visible[i, :k, :k] = s["ids"], s["positions"], s["visible"]
    return ids, mask, additive_mask(visible, dtype), positions


def finetune_lm(
    model: Any,
    slots: list[dict[str, torch.Tensor]] | None,
    loss_mask: torch.Tensor,
    cfg: FinetuneConfig,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 100,
) -> Any:
    """A copy of ``model`` trained ``cfg.steps`` steps on the decodes ``slots`` (from :func:`decode_slots`; ``None``
    only when ``checkpoint`` holds the finished run), loss on the tokens of ``loss_mask`` ``(N, T)``; batches drawn
    with a seeded generator; checkpointed and resumed as every LM of the package (:func:`adore.tasks.fit_lm`)."""
    require(cfg.steps > 0, "finetune.steps", cfg.steps, "> 0 to fine-tune")
    tuned = copy.deepcopy(model)
    if cfg.lora_rank:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise ImportError(
                "finetune.lora_rank > 0 needs peft: pip install 'paperlab-adore[lora]'"
            ) from err

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        tuned = get_peft_model(
            tuned, LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, target_modules=targets)
        )
    if checkpoint is not None and checkpoint_finished(checkpoint, cfg.steps):
        load_checkpoint(checkpoint, model=tuned, restore_rng=False)
        log.info("fine-tuned LM loaded from %s", checkpoint)
        return _merged(tuned, cfg).eval()
    if slots is None:
        raise ValueError("finetune_lm: no decode slots given and no finished checkpoint to load")
    dtype = next(model.parameters()).dtype
    g = torch.Generator().manual_seed(seed + 11)

    def next_batch(step: int) -> tuple[torch.Tensor, ...]:
        pick = torch.randint(0, len(slots), (cfg.batch_size,), generator=g).tolist()
        return pad_slots([slots[i] for i in pick], loss_mask[pick], dtype)

    fit_lm(
        tuned,
        next_batch,
        cfg.steps,
        cfg.lr,
        weight_decay=0.01,
        pct_start=0.1,
        desc="ADORE fine-tune",
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        generators={"batches": g},
    )
    return _merged(tuned, cfg).eval()


def _merged(model: Any, cfg: FinetuneConfig) -> Any:
    """The LoRA adapters merged into the weights (a plain model for the decode loop and ``generate``)."""
    return model.merge_and_unload() if cfg.lora_rank else model
