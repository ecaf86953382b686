"""ProFuser's progressive schedule (abstract: "progressively transition from inference mode to training mode").

The paper fuses in inference mode first (the sources' short answers: easy) and moves to training mode (the detailed
ground truth: hard), "progressively" (abstract). The text we could read does not say whether the move is one switch
or gradual, so both are here (README, "Choices where the paper is silent"). ``kind``:

* ``linear`` (default): a sample drawn at training progress ``p`` in [0, 1) is training mode with probability ``p``;
* ``stages``: two stages, the first ``switch`` share of the samples drawn in inference mode, the rest in training
  mode;
* ``inference`` / ``training``: one mode throughout (the inference-only ablation; SFT and FuseLLM).

:class:`ProgressiveSampler` turns the schedule into the index stream of a ``DataLoader`` over
``[inference items..., training items...]``: each mode's items are visited in a fresh random order per pass.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from torch.utils.data import Sampler

from paperlab.config import require

KINDS = ("stages", "linear", "inference", "training")


@dataclass
class ScheduleConfig:
    kind: str = "linear"
    switch: float = 0.5  # stages: share of the samples drawn in inference mode

    def __post_init__(self) -> None:
        require(self.kind in KINDS, "schedule.kind", self.kind, f"one of {KINDS}")
        require(0.0 <= self.switch <= 1.0, "schedule.switch", self.switch, "in [0, 1]")

    def training_share(self, progress: float) -> float:
        """Probability that a sample drawn at ``progress`` (in [0, 1]) is a training-mode sample."""
        if self.kind == "training":
            return 1.0
        if self.kind == "inference":
            return 0.0
        if self.kind == "stages":
            return 0.0 if progress < self.switch else 1.0
        return min(1.0, max(0.0, progress))


class ProgressiveSampler(Sampler[int]):
    """``total`` indices into ``[inference items (n_inference) ..., training items (n_training)]`` following
    ``schedule``; reproducible from ``seed``."""

    def __init__(
        self, schedule: ScheduleConfig, n_inference: int, n_training: int, total: int, seed: int = 0
    ):
        need_inf = schedule.kind in ("stages", "linear", "inference") and (
            schedule.kind != "stages" or schedule.switch > 0
        )
        need_train = schedule.kind in ("stages", "linear", "training") and (
            schedule.kind != "stages" or schedule.switch < 1
        )
        require(
            n_inference > 0 or not need_inf, "inference items", n_inference, f"> 0 for schedule {schedule}"
        )
        require(
            n_training > 0 or not need_train, "training items", n_training, f"> 0 for schedule {schedule}"
        )
        self.schedule, self.n_inference, self.n_training, self.total, self.seed = (
            schedule,
            n_inference,
            n_training,
            total,
            seed,
        )

    def __len__(self) -> int:
        return self.total

    def modes(self) -> list[str]:
        """The mode of every position of the stream (what :meth:`__iter__` follows)."""
        rng = random.Random(self.seed)
        return [
            "training" if rng.random() < self.schedule.training_share(i / max(1, self.total)) else "inference"
            for i in range(self.total)
        ]

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed + 1)
        pools: dict[str, list[int]] = {"inference": [], "training": []}
        ranges = {
            "inference": (0, self.n_inference),
            "training": (self.n_inference, self.n_inference + self.n_training),
        }
        for mode in self.modes():
            if not pools[mode]:
                pools[mode] = list(range(*ranges[mode]))
                rng.shuffle(pools[mode])
            yield pools[mode].pop()
