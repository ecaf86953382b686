"""SFT, SPIN, IRFT (T stages) and RFT on :mod:`irl_sft.tiny`'s task, one runner; metrics during every stage.

Every method spends ``steps`` gradient steps in total (IRFT: ``steps // T`` per stage) on minibatches of
``batch`` demonstrations. A checkpoint (policy, optimisers, reward model, the stage's reference model and
generations, RNG, metrics so far) is written atomically at every evaluation mark, inside stages too, so a run
interrupted anywhere resumes at the last mark with the same result as an uninterrupted one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from irl_sft.losses import irft_loss, reward_loss
from irl_sft.tiny import Policy, Task, bigram_counts, markov_sample
from paperlab.config import ConfigError
from paperlab.io import atomic_torch_save

METHODS = ("SFT", "SPIN", "IRFT", "RFT")


@dataclass
class MethodConfig:
    steps: int = 400
    batch: int = 32
    lr: float = 1e-3
    beta: float = 0.5
    rl_samples: int = 32  # RFT: RLOO samples per policy step
    rl_beta: float = 1.0  # RFT: KL(pi || pi_base) coefficient of the policy step
    reward_lr: float = 0.01  # RFT: reward table learning rate
    reward_steps: int = 20  # RFT: full-batch reward steps per stage (the official script: 1 epoch per stage)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "rl_samples", "reward_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"method.{name}={getattr(self, name)}: expected >= 1")
        for name in ("lr", "beta", "reward_lr", "rl_beta"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"method.{name}={getattr(self, name)}: expected > 0")


class BigramReward(nn.Module):
    """RFT's reward model: ``r(y) = sum_t phi[y_{t-1}, y_t]``."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.table = nn.Parameter(torch.zeros(vocab + 1, vocab))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        prev = torch.cat([torch.full_like(y[:, :1], self.vocab), y[:, :-1]], dim=1)
        return self.table[prev, y].sum(1)


@torch.no_grad()
def evaluate(policy: Policy, task: Task, seed: int = 123, n_gen: int = 2000) -> dict[str, float]:
    """Held-out metrics (module docstring of :mod:`irl_sft.tiny`)."""
    g = torch.Generator().manual_seed(seed)
    rejected = task.base.sample(task.heldout.shape[0], g)
    r_demo = policy.logp(task.heldout) - task.base.logp(task.heldout)
    r_rej = policy.logp(rejected) - task.base.logp(rejected)
    generations = policy.sample(n_gen, g)
    target = markov_sample(task.logits_b, n_gen, task.cfg.length, g)
    tv = (
        0.5 * (bigram_counts(generations, task.cfg.vocab) - bigram_counts(target, task.cfg.vocab)).abs().sum()
    )
    return {
        "ranking_acc": 100.0 * float((r_demo > r_rej).float().mean()),
        "demo_loglik_per_token": float(policy.logp(task.heldout).mean()) / task.cfg.length,
        "bigram_tv": float(tv),
    }


def _stages(method: str, T: int) -> int:
    return {"SFT": 1, "SPIN": 1, "IRFT": T, "RFT": T}[method]


def train(
    method: str,
    task: Task,
    cfg: MethodConfig,
    T: int = 1,
    seed: int = 0,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    evals: int = 4,
) -> tuple[Policy, list[dict[str, Any]]]:
    """Train ``method`` from the base model; returns the policy and metrics rows (``step``, ``stage`` = stages
    finished, metrics) at the start, every ``steps // evals`` steps and at every stage end.

    ``checkpoint``: a file written at each of those marks and resumed from; ``stop_after``: stop after that many
    steps (to simulate an interruption in tests; the run stops at the first mark at or past it)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if T < 1:
        raise ValueError(f"T={T}: expected >= 1 stage")
    stages = _stages(method, T)
    per_stage = max(1, cfg.steps // stages)
    eval_every = max(1, cfg.steps // max(1, evals))
    policy = task.fresh()
    reward = BigramReward(task.cfg.vocab)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    opt_r = torch.optim.Adam(reward.parameters(), lr=cfg.reward_lr)
    g = torch.Generator().manual_seed(seed)
    start_stage, start_i, resumed = 0, 0, None
    if checkpoint is not None and checkpoint.is_file():
        resumed = torch.load(checkpoint, weights_only=False)
        policy.load_state_dict(resumed["policy"])
        reward.load_state_dict(resumed["reward"])
        opt.load_state_dict(resumed["opt"])
        opt_r.load_state_dict(resumed["opt_r"])
        g.set_state(resumed["generator"])
        torch.set_rng_state(resumed["torch_rng"])
        history, start_stage, start_i = resumed["history"], resumed["stage"], resumed["i"]
    else:
        torch.manual_seed(seed)
        history = [{"step": 0, "stage": 0, **evaluate(policy, task)}]
    start_ref = copy.deepcopy(task.base)
    slices = task.demos.chunk(stages) if method in ("IRFT", "RFT") else [task.demos]
    for stage in range(start_stage, stages):
        demos = slices[stage % len(slices)]
        mid_stage = resumed is not None and stage == start_stage and start_i > 0
        ref = copy.deepcopy(policy).eval()  # pi_t: the model at the stage start
        if mid_stage:
            ref.load_state_dict(resumed["ref"])
        for p in ref.parameters():
            p.requires_grad_(False)
        generations = resumed["generations"] if mid_stage else None
        if method in ("SPIN", "IRFT", "RFT") and generations is None:
            generations = ref.sample(demos.shape[0], g)  # one per demonstration, fixed for the stage
        if method in ("SPIN", "IRFT"):
            with torch.no_grad():
                ref_demo, ref_gen = ref.logp(demos), ref.logp(generations)
        if method == "RFT" and not mid_stage:
            # Alg. 1 reward step: fit r_phi to rank this stage's demonstrations above the fresh generations
            for _ in range(cfg.reward_steps):
                loss_r = reward_loss(reward(demos), reward(generations))
                opt_r.zero_grad(set_to_none=True)
                loss_r.backward()
                opt_r.step()
        for i in range(start_i if mid_stage else 0, per_stage):
            if method == "SFT":
                idx = torch.randint(demos.shape[0], (cfg.batch,), generator=g)
                loss = -policy.logp(demos[idx]).mean() / task.cfg.length
            elif method in ("SPIN", "IRFT"):
                idx = torch.randint(demos.shape[0], (cfg.batch,), generator=g)
                loss = irft_loss(
                    policy.logp(demos[idx]),
                    policy.logp(generations[idx]),
                    ref_demo[idx],
                    ref_gen[idx],
                    cfg.beta,
                )
            else:  # RFT policy step: RLOO on r_phi(y) - rl_beta * (log pi - log pi_base)(y)
                y = policy.sample(cfg.rl_samples, g)
                logp = policy.logp(y)
                with torch.no_grad():
                    ret = reward(y) - cfg.rl_beta * (logp.detach() - start_ref.logp(y))
                    baseline = (ret.sum() - ret) / (ret.shape[0] - 1)
                loss = -((ret - baseline) * logp).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step = stage * per_stage + i + 1
            done = i + 1 == per_stage
            if step % eval_every and not done:
                continue
            history.append({"step": step, "stage": stage + done, **evaluate(policy, task)})
            if checkpoint is not None:
                state = {
                    "policy": policy.state_dict(),
                    "reward": reward.state_dict(),
                    "opt": opt.state_dict(),
                    "opt_r": opt_r.state_dict(),
                    "ref": None if done else ref.state_dict(),
                    "generations": None if done else generations,
                    "generator": g.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "stage": stage + done,
                    "i": 0 if done else i + 1,
                }
                atomic_torch_save(state, checkpoint)
            if stop_after is not None and step >= stop_after:
                return policy, history
    return policy, history
