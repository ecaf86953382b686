"""paperlab-aihf: Alignment with Integrated Human Feedback (AIHF) -- in progress: the joint demonstration +
preference objectives (:mod:`aihf.losses`) and the implicit variant on TRL (:mod:`aihf.trainer`)."""

from aihf.losses import PairLogps, dpo_loss, explicit_reward_loss, implicit_loss, sequence_logps

__all__ = ["PairLogps", "dpo_loss", "explicit_reward_loss", "implicit_loss", "sequence_logps"]
