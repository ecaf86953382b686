"""The AIHF objectives (Li et al., 2024, "Joint Demonstration and Preference Learning Improves Policy Alignment with
Human Feedback", arXiv 2406.06874), in plain torch on per-sequence log-probabilities or rewards.

AIHF learns ONE reward from two kinds of human feedback at once (Sec. 3):

    max_r   w_demo * L_demo(r) + w_pref * L_pref(r)

- ``L_pref``: the Bradley-Terry log-likelihood of the preference pairs, log sigma(r(chosen) - r(rejected)).
- ``L_demo``: maximum-likelihood IRL on the demonstrations: the log-likelihood of a demonstration under the
  entropy-regularised optimal policy of r; its gradient is grad r(demo) - E_{y ~ pi_r}[grad r(y)], i.e. it contrasts a
  demonstration with a sample of the current policy. The official code (``reward_learning_AIHF.py``) trains this
  exactly as a second kind of Bradley-Terry pair -- (demonstration, current-policy sample) -- weighted by w_demo,
  in one weighted pairwise loss with the preference pairs.

Explicit variant (:func:`explicit_reward_loss`): a reward model r_phi trained on that weighted pairwise loss, the
policy then optimised against r_phi with a KL penalty (RLHF's step); the two alternate within one stage.

Implicit variant (:func:`implicit_loss`): the policy parameterises the reward, r = beta * log(pi / pi_ref) (the DPO
substitution, Rafailov et al. 2023, Eq. 5), so one policy loss covers both terms:

    L = w_demo * mean_demo  l(beta * [logratio(demo) - logratio(sample)])
      + w_pref * mean_pref -log sigma(beta * [logratio(chosen) - logratio(rejected)])

with l = -log sigma (``demo_form="logistic"``: self-play, SPIN's loss) or l(z) = -z (``demo_form="linear"``: the
ML-IRL gradient itself, -(r(demo) - r(sample))). In the linear form the term's gradient is beta times the
log-likelihood gradient, so its weight must be on the scale of 1/beta to matter: with ``w_demo = 1/beta`` it is the
SFT gradient on the demonstration minus the same on the policy's own sample.

Weighting: :func:`implicit_loss` takes the mean of each term over its own pairs (the oracle runner, full-data
batches); :func:`implicit_pair_loss` weighs every pair (the LLM trainer, mixed mini-batches), as
:func:`explicit_reward_loss` and the official ``reward_learning_AIHF.py`` do.

Reductions (tested): ``w_demo = 0`` is DPO's loss (TRL's ``sigmoid`` loss); ``w_pref = 0`` is the demonstration-only
loss (SPIN's for the logistic form); the explicit loss with ``w_demo = 0`` is RLHF's reward-model loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

DEMO_FORMS = ("logistic", "linear")


@dataclass
class PairLogps:
    """Summed completion log-probs of a pair under the policy and the reference (each ``(n,)``); for demonstration
    pairs ``chosen`` is the demonstration and ``rejected`` the current policy's sample for the same prompt."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor

    def margin(self) -> torch.Tensor:
        """logratio(chosen) - logratio(rejected), ``(n,)``."""
        return (self.chosen - self.ref_chosen) - (self.rejected - self.ref_rejected)

    def __len__(self) -> int:
        return int(self.chosen.numel())


def check_weights(w_demo: float, w_pref: float) -> None:
    if w_demo < 0 or w_pref < 0:
        raise ValueError(f"w_demo and w_pref must be >= 0, got w_demo={w_demo}, w_pref={w_pref}")
    if w_demo == 0 and w_pref == 0:
        raise ValueError(
            "w_demo and w_pref are both 0: the AIHF objective would be empty; set at least one > 0"
        )


def dpo_loss(pairs: PairLogps, beta: float) -> torch.Tensor:
    """DPO (Rafailov et al. 2023, Eq. 7): mean of -log sigma(beta * margin)."""
    return -F.logsigmoid(beta * pairs.margin()).mean()


def demo_loss(pairs: PairLogps, beta: float, form: str = "logistic") -> torch.Tensor:
    """The implicit demonstration term (see the module docstring) over (demonstration, sample) pairs."""
    if form == "logistic":
        return -F.logsigmoid(beta * pairs.margin()).mean()
    if form == "linear":
        return -(beta * pairs.margin()).mean()
    raise ValueError(f"demo_form must be one of {DEMO_FORMS}, got {form!r}")


def implicit_loss(
    demo: PairLogps | None,
    pref: PairLogps | None,
    beta: float,
    w_demo: float = 1.0,
    w_pref: float = 1.0,
    demo_form: str = "logistic",
) -> tuple[torch.Tensor, dict[str, float]]:
    """AIHF's implicit (DPO-style) loss: ``w_demo * L_demo + w_pref * L_pref``; returns ``(loss, parts)``. A term
    with weight 0 is skipped (its pairs may be ``None``); a term with weight > 0 needs at least one pair."""
    check_weights(w_demo, w_pref)
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    total = torch.zeros(())
    parts: dict[str, float] = {}
    if w_demo > 0:
        if demo is None or len(demo) == 0:
            raise ValueError("w_demo > 0 but there are no demonstration pairs (demonstration, policy sample)")
        term = demo_loss(demo, beta, demo_form)
        total = total + w_demo * term
        parts["demo"] = float(term.detach())
    if w_pref > 0:
        if pref is None or len(pref) == 0:
            raise ValueError("w_pref > 0 but there are no preference pairs (chosen, rejected)")
        term = dpo_loss(pref, beta)
        total = total + w_pref * term
        parts["pref"] = float(term.detach())
    return total, parts


def explicit_reward_loss(
    r_demo: torch.Tensor | None,
    r_sample: torch.Tensor | None,
    r_chosen: torch.Tensor | None,
    r_rejected: torch.Tensor | None,
    w_demo: float = 1.0,
    w_pref: float = 1.0,
    demo_form: str = "logistic",
) -> torch.Tensor:
    """AIHF's explicit reward step: one weighted loss over demonstration pairs (demo > current policy sample,
    weight ``w_demo``) and preference pairs (chosen > rejected, Bradley-Terry, weight ``w_pref``), averaged over all
    pairs as the official mixed batches do. The demonstration pairs take Bradley-Terry's ``-log sigma(r(demo) -
    r(sample))`` (``demo_form="logistic"``, the official code) or the ML-IRL likelihood gradient itself,
    ``-(r(demo) - r(sample))`` (``"linear"``, Sec. 3: its gradient is grad r(demo) - E_pi grad r(y), zero once the
    policy of r reproduces the demonstrations). ``w_demo = 0`` is RLHF's reward-model loss."""
    check_weights(w_demo, w_pref)
    losses, weights = [], []
    if w_demo > 0:
        if r_demo is None or r_sample is None or r_demo.numel() == 0:
            raise ValueError("w_demo > 0 but there are no demonstration pairs (demonstration, policy sample)")
        if demo_form not in DEMO_FORMS:
            raise ValueError(f"demo_form must be one of {DEMO_FORMS}, got {demo_form!r}")
        diff = r_demo - r_sample
        losses.append(-F.logsigmoid(diff) if demo_form == "logistic" else -diff)
        weights.append(torch.full_like(r_demo, w_demo))
    if w_pref > 0:
        if r_chosen is None or r_rejected is None or r_chosen.numel() == 0:
            raise ValueError("w_pref > 0 but there are no preference pairs (chosen, rejected)")
        losses.append(-F.logsigmoid(r_chosen - r_rejected))
        weights.append(torch.full_like(r_chosen, w_pref))
    return (torch.cat(weights) * torch.cat(losses)).mean()


def implicit_pair_loss(
    pairs: PairLogps,
    is_demo: torch.Tensor,
    beta: float,
    w_demo: float = 1.0,
    w_pref: float = 1.0,
    demo_form: str = "linear",
) -> tuple[torch.Tensor, dict[str, float]]:
    """AIHF's implicit loss weighted PER PAIR, as :func:`explicit_reward_loss` and the official mixed batches weigh
    them: ``mean over pairs of w_i * l_i`` with ``w_i = w_demo`` and ``l_i`` the demonstration term (``demo_form``)
    for a demonstration pair (``is_demo``), ``w_i = w_pref`` and DPO's ``-log sigma(beta * margin)`` for a
    preference pair; pairs of a kind weighted 0 are left out of the mean (as :func:`explicit_reward_loss` leaves
    them out). This is what :class:`aihf.trainer.AIHFTrainer` minimises on each batch. Unlike :func:`implicit_loss`
    (a per-kind mean of each term), a kind's share of the loss grows with its share of the batch.
    Returns ``(loss, parts)``, parts the per-kind mean terms of the batch (for logging)."""
    check_weights(w_demo, w_pref)
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if demo_form not in DEMO_FORMS:
        raise ValueError(f"demo_form must be one of {DEMO_FORMS}, got {demo_form!r}")
    is_demo = is_demo.to(device=pairs.chosen.device, dtype=torch.bool).reshape(-1)
    if is_demo.numel() != len(pairs):
        raise ValueError(f"is_demo has {is_demo.numel()} flags for {len(pairs)} pairs")
    z = beta * pairs.margin()
    per_pair = -F.logsigmoid(z)
    if demo_form == "linear":
        per_pair = torch.where(is_demo, -z, per_pair)
    weights = torch.where(is_demo, torch.full_like(z, w_demo), torch.full_like(z, w_pref))
    kept = weights > 0
    parts: dict[str, float] = {}
    for name, mask in (("demo", is_demo & kept), ("pref", ~is_demo & kept)):
        if mask.any():
            parts[name] = float(per_pair[mask].detach().mean())
    if not kept.any():  # no pair of a weighted kind: a zero that keeps the graph
        return (per_pair * 0.0).sum(), parts
    return (weights * per_pair)[kept].mean(), parts


def sequence_logps(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Summed log-prob of the completion tokens: ``logits (n, T, V)`` of ``ids (n, T)``; ``completion_mask (n, T)``
    marks the completion tokens (the prompt and padding excluded)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (logp * completion_mask[:, 1:]).sum(-1)
