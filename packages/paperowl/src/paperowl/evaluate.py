"""Evaluation: COCO caption metrics per task (arXiv 2311.18248, Sec. 5.1 reports BLEU-4, ROUGE-L, METEOR, CIDEr)
and the caption-prior baselines a captioner has to beat.

Scores come from :func:`paperlab.metrics.coco_caption_scores` (BLEU-4/METEOR/ROUGE-L in [0, 1], CIDEr unbounded).
The paper's GPT-judged F1 (``F1^gpt``) is not reproduced (it needs GPT-3.5).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

from paperlab.metrics import coco_caption_scores
from paperlab.signals import signals_deferred
from paperowl.data import Sample

METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def _scores(predictions: list[str], references: list[list[str]], metrics: Sequence[str]) -> dict:
    # pycocoevalcap's METEOR holds a lock while it talks to its Java process: an Interrupted raised there
    # leaves the lock taken, and its __del__ (and the interpreter's exit) hang for ever
    with signals_deferred():
        return coco_caption_scores(predictions, references, metrics)


def score_by_task(
    predictions: Sequence[str], samples: Sequence[Sample], metrics: Sequence[str] = METRICS
) -> dict[str, dict[str, float | None]]:
    """``{task_type: {metric: value}}`` plus ``"all"``, one reference (the sample's answer) per prediction."""
    if len(predictions) != len(samples):
        raise ValueError(f"{len(predictions)} predictions for {len(samples)} samples")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[s.task_type or "all"].append(i)
    out = {}
    for task, idx in sorted(groups.items()):
        out[task] = _scores([predictions[i] for i in idx], [[samples[i].answer] for i in idx], metrics)
    if len(groups) > 1:
        out["all"] = _scores(list(predictions), [[s.answer] for s in samples], metrics)
    return out


def most_frequent_caption(train: Sequence[Sample]) -> str:
    """The caption prior: the most frequent training answer (ties: the first seen)."""
    return Counter(s.answer for s in train).most_common(1)[0][0]


def _pixels(image: Image.Image, side: int = 16) -> np.ndarray:
    return np.asarray(image.convert("L").resize((side, side)), dtype=np.float32).ravel() / 255.0


def nearest_caption(train: Sequence[Sample], test: Sequence[Sample]) -> list[str]:
    """Nearest-neighbour captions: the answer of the training sample whose first image is closest in
    16x16 grey pixels (L2) to each test sample's first image."""
    bank = np.stack([_pixels(s.images[0]) for s in train])
    out = []
    for s in test:
        distances = ((bank - _pixels(s.images[0])) ** 2).sum(axis=1)
        out.append(train[int(distances.argmin())].answer)
    return out
