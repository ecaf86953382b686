"""Run under ``accelerate launch --num_processes 2`` by test_issue29.py: the tiny experiment's real entry point
(``python -m semmim``), with the ITC queue on; after pretraining each rank saves its queues, centres and the local
momentum features / teacher logits it contributed to ``<out>/rank<r>.pt``."""

import os
import sys

import torch

import semmim.experiment as experiment
from semmim.vlp import SemMIMModel

out = sys.argv.pop(1)
rank = int(os.environ.get("RANK", "0"))
seen: dict[str, list] = {"image": [], "text": [], "center": [], "patch_center": []}

enqueue, update = SemMIMModel._enqueue, SemMIMModel._update_center


def recording_enqueue(self, img, txt, *extra):
    seen["image"].append(img.detach().clone())
    seen["text"].append(txt.detach().clone())
    return enqueue(self, img, txt, *extra)


def recording_update(self, center, logits):
    which = "center" if center is self.center else "patch_center"
    seen[which].append(logits.detach().float().reshape(-1, logits.shape[-1]).mean(0))
    return update(self, center, logits)


SemMIMModel._enqueue, SemMIMModel._update_center = recording_enqueue, recording_update
pretrain = experiment.pretrain


def pretrain_and_dump(model, *args, **kwargs):
    history = pretrain(model, *args, **kwargs)
    state = {k: getattr(model, k).detach().clone() for k in ("image_queue", "text_queue", "queue_ptr")}
    state.update(center=model.center.clone(), patch_center=model.patch_center.clone(), seen=seen)
    torch.save(state, os.path.join(out, f"rank{rank}.pt"))
    return history


experiment.pretrain = pretrain_and_dump
from semmim.cli import main  # noqa: E402

main()
