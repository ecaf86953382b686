"""Which source is advantageous for a sample (ProFuser abstract, Sec. 1): training and inference mode.

* Training mode (FuseLLM's MinCE): the source with the lowest cross entropy on the ground-truth response under
  teacher forcing (:func:`training_mode_choice`).
* Inference mode: every source generates a response; a reward model scores them; the highest reward wins
  (:func:`inference_mode_choice`). Its response becomes the sample's response and its own distributions on that
  response the fusion target (:mod:`profuser.experiment` builds them).

The fused distribution of a sample is the chosen source's aligned distribution (:func:`fuse`); with a single source
it is that source's, whatever the mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from profuser.represent import RepresentationError, SampleRep


def training_mode_choice(ce: np.ndarray) -> np.ndarray:
    """``ce`` (sources, samples) -> index of the lowest cross entropy per sample (first on ties)."""
    ce = np.asarray(ce, dtype=np.float64)
    if ce.ndim != 2 or ce.shape[0] == 0:
        raise ValueError(f"ce must be (sources, samples) with at least one source, got shape {ce.shape}")
    return np.argmin(ce, axis=0)


def inference_mode_choice(rewards: np.ndarray, tie_break: np.ndarray | None = None) -> np.ndarray:
    """``rewards`` (sources, samples) of each source's generated response -> index of the highest reward per
    sample. Equal rewards are decided by the lowest ``tie_break`` (e.g. the sources' cross entropy on their own
    response), else by the first source."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[0] == 0:
        raise ValueError(
            f"rewards must be (sources, samples) with at least one source, got shape {rewards.shape}"
        )
    if tie_break is None:
        return np.argmax(rewards, axis=0)
    tie_break = np.asarray(tie_break, dtype=np.float64)
    if tie_break.shape != rewards.shape:
        raise ValueError(f"tie_break shape {tie_break.shape} differs from rewards shape {rewards.shape}")
    best = rewards == rewards.max(axis=0, keepdims=True)
    return np.argmin(np.where(best, tie_break, np.inf), axis=0)


def fuse(reps: Sequence[SampleRep], choice: int) -> SampleRep:
    """The fused representation of one sample: the chosen source's (all must describe the same target tokens)."""
    if not reps:
        raise RepresentationError("fuse: no source representations given")
    if not 0 <= choice < len(reps):
        raise ValueError(f"fuse: choice {choice} out of range for {len(reps)} sources")
    for rep in reps[1:]:
        if rep.uid != reps[0].uid or not np.array_equal(rep.target_ids, reps[0].target_ids):
            raise RepresentationError(f"fuse: sources disagree on sample {reps[0].uid!r} vs {rep.uid!r}")
    return reps[choice]
