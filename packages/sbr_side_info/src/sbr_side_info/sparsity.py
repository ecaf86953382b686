"""Sparsified copies of a real data set for the side-information question (issue 31, item 4): every item is kept
in only a fraction of the training sessions it occurs in, so its ID is rarely seen, while its attributes (genres,
categories) stay with it wherever it is kept. The test period is left untouched, so every copy is scored on
(nearly) the same test sessions; the SR-GNN protocol then runs as usual (a thinned session of fewer than 2 items
is dropped, and so is a test item no longer seen in training)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

from sbr_side_info.schema import RawDataset


def training_cutoff(raw: RawDataset, test_days: float) -> float:
    """The protocol's split time: ``test_days`` before the last session of 2+ events (``preprocess.prepare``)."""
    dates = [s.date if s.date is not None else max(s.times) for s in raw.sessions if len(s.items) >= 2]
    return max(dates) - test_days * 86400.0


def sparsify_item_ids(raw: RawDataset, keep_fraction: float, test_days: float, seed: int = 0) -> RawDataset:
    """A copy of ``raw`` in which each item stays in ``ceil(keep_fraction * n)`` of the ``n`` training sessions it
    occurs in (chosen at random, at least one) and is removed from the others; sessions after the training cutoff
    are kept whole. ``keep_fraction = 1`` returns the sessions unchanged."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction: expected a value in (0, 1], got {keep_fraction}")
    cutoff = training_cutoff(raw, test_days)
    train = [
        i for i, s in enumerate(raw.sessions) if (s.date if s.date is not None else max(s.times)) < cutoff
    ]
    where: dict[str, list[int]] = {}
    for i in train:
        for item in dict.fromkeys(raw.sessions[i].items):
            where.setdefault(item, []).append(i)
    rng = random.Random(seed)
    drop: set[tuple[int, str]] = set()
    for item in sorted(where):
        sessions = where[item]
        keep = max(1, math.ceil(keep_fraction * len(sessions)))
        kept = set(rng.sample(sessions, keep))
        drop.update((i, item) for i in sessions if i not in kept)
    out = []
    for i, s in enumerate(raw.sessions):
        keep = [j for j, item in enumerate(s.items) if (i, item) not in drop]
        if len(keep) == len(s.items):
            out.append(s)
        elif keep:
            out.append(
                replace(
                    s,
                    items=[s.items[j] for j in keep],
                    times=[s.times[j] for j in keep],
                    behaviours=[s.behaviours[j] for j in keep],
                )
            )
    return RawDataset(raw.name, out, raw.item_side, raw.session_side)
