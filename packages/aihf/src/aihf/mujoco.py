"""``aihf-mujoco``: AIHF vs BC vs RLHF-style vs preference-only on a MuJoCo locomotion task (paper Sec. 5, MuJoCo),
at CPU scale. Reinforcement learning is stable-baselines3's PPO; this module holds only the reward learning.

1. **Expert**: SB3 PPO (observation and return normalisation through ``VecNormalize``) on the true reward for
   ``expert_steps``; cached. Its checkpoints along training form the pool of behaviour policies of varied quality.
2. **Demonstrations**: ``n_demo`` expert episodes (state, action). **Preferences**: pairs of ``segment``-step
   segments from rollouts of the behaviour pool, labelled by their true return (Bradley-Terry annotator with
   ``pref_temperature``, as in Christiano et al. 2017 / the paper's synthetic labels).
3. **Methods** (one reward network ``r(s, a)``; every RL method gets ``rl_steps`` environment steps of PPO):
   - ``BC``: the PPO policy's Gaussian, maximum likelihood on the demonstrations (the SFT analogue);
   - ``preference-only``: reward from the preferences (Bradley-Terry on segment returns), PPO from scratch;
   - ``RLHF``: BC, then the preference reward, then PPO from the BC policy (staged);
   - ``AIHF``: BC initialisation, then ONE stage alternating PPO rollouts on the current reward with reward steps on
     ``w_demo * BT(demonstration segment > current policy segment) + w_pref * BT(preferences)`` (the explicit
     variant, :func:`aihf.losses.explicit_reward_loss`), run after each rollout by an SB3 callback.
   Learned-reward runs use ``terminate_when_unhealthy=False`` (no alive-bonus shortcut); evaluation always uses the
   true reward and the standard environment.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from aihf.losses import explicit_reward_loss
from aihf.mujoco_rl import (
    PPOConfig,
    behavior_cloning,
    evaluate,
    make_venv,
    new_ppo,
    normalized,
    rollout,
    train_ppo,
)
from paperlab.config import ConfigError, require
from paperlab.data import cache_root
from paperlab.io import JsonlCache, derived_key
from paperlab.report import plot_lines, results_dir, write_results

log = logging.getLogger(__name__)
MUJOCO_METHODS = ("BC", "preference-only", "RLHF", "AIHF")


def _mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out)
    )


class RewardNet(nn.Module):
    """``r(s, a)``: an MLP over the observation, standardised by the expert's fixed statistics, and the action."""

    def __init__(
        self, obs_dim: int, act_dim: int, obs_mean: np.ndarray, obs_var: np.ndarray, hidden: int = 64
    ):
        super().__init__()
        self.net = _mlp(obs_dim + act_dim, 1, hidden)
        self.mean, self.std = np.asarray(obs_mean), np.sqrt(np.asarray(obs_var) + 1e-8)

    def forward(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor) -> torch.Tensor:
        o = torch.as_tensor(np.clip((np.asarray(obs) - self.mean) / self.std, -10, 10), dtype=torch.float32)
        a = torch.as_tensor(np.asarray(act), dtype=torch.float32)
        return self.net(torch.cat([o, a], dim=-1)).squeeze(-1)

    def segment_return(self, segs: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
        """``segs`` = (obs ``(n, T, d)``, act ``(n, T, k)``) -> summed reward ``(n,)``."""
        obs, act = segs
        return self(obs, act).sum(-1)


def segments(episodes: list[dict[str, np.ndarray]], n: int, length: int, rng: np.random.Generator):
    """``n`` random windows of ``length`` steps (episodes shorter than ``length`` are skipped) ->
    (obs ``(n, T, d)``, act ``(n, T, k)``, true return ``(n,)``)."""
    usable = [ep for ep in episodes if len(ep["rew"]) >= length]
    if not usable:
        raise ConfigError(
            f"segment={length}: no episode reaches the segment length {length}; lower `segment`"
        )
    obs, act_, ret = [], [], []
    for _ in range(n):
        ep = usable[rng.integers(len(usable))]
        s = rng.integers(len(ep["rew"]) - length + 1)
        obs.append(ep["obs"][s : s + length])
        act_.append(ep["act"][s : s + length])
        ret.append(ep["rew"][s : s + length].sum())
    return np.stack(obs), np.stack(act_), np.array(ret)


@dataclass
class MujocoConfig:
    name: str = "mujoco"
    env: str = "Hopper-v5"
    expert_steps: int = 300_000
    n_demo: int = 5  # expert episodes
    segment: int = 50
    pref_temperature: float = (
        0.0  # 0: the higher true return wins; > 0: P(a > b) = sigmoid((R_a - R_b) / temp)
    )
    n_prefs: list[int] = field(default_factory=lambda: [20, 100, 500])
    rl_steps: int = 100_000
    bc_steps: int = 2000
    reward_steps: int = 300  # preference-reward fitting (preference-only, RLHF)
    reward_lr: float = 3e-4
    aihf_reward_steps: int = 20  # AIHF: reward steps after each PPO rollout
    finetune_lr: float = 3e-4  # RL from the BC policy: PPO learning rate
    w_demo: float = 1.0
    w_pref: float = 1.0
    methods: list[str] = field(default_factory=lambda: list(MUJOCO_METHODS))
    eval_episodes: int = 5
    seed: int = 0
    ppo: PPOConfig = field(default_factory=PPOConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        for m in self.methods:
            require(m in MUJOCO_METHODS, "methods", m, f"a subset of {list(MUJOCO_METHODS)}")
        require(self.expert_steps > 0 and self.rl_steps > 0, "expert_steps/rl_steps", self.rl_steps, "> 0")
        require(bool(self.n_prefs) and min(self.n_prefs) >= 1, "n_prefs", self.n_prefs, "counts >= 1")
        require(self.n_demo >= 1, "n_demo", self.n_demo, ">= 1 expert episode")
        require(self.segment >= 2, "segment", self.segment, ">= 2 steps")
        if self.w_demo < 0 or self.w_pref < 0 or (self.w_demo == 0 and self.w_pref == 0):
            raise ConfigError(f"w_demo={self.w_demo}, w_pref={self.w_pref}: both >= 0 and not both 0")


def expert_key(cfg: MujocoConfig) -> str:
    """The key of the cached expert: what its PPO training depends on."""
    return derived_key({"env": cfg.env, "steps": cfg.expert_steps, "seed": cfg.seed, "ppo": asdict(cfg.ppo)})


def runs_key(cfg: MujocoConfig) -> str:
    """The key of ``runs-sb3-<key>.jsonl`` (each run recorded under its method and n_pref): every setting but the
    labels, and the largest n_pref, which sets how many segment pairs are drawn (the first n of them differ when
    it changes)."""
    return derived_key({**asdict(cfg), "n_prefs": max(cfg.n_prefs)}, drop=("name", "progress", "methods"))


def train_expert(cfg: MujocoConfig) -> list[tuple[Any, Any]]:
    """The pool of behaviour policies: the expert's ``(model, obs_rms)`` at 5 points of its training (the last is
    the expert), cached under ``PAPERLAB_CACHE``."""
    import pickle

    from stable_baselines3 import PPO

    folder = cache_root() / "aihf" / f"expert-sb3-{cfg.env}-{expert_key(cfg)}"
    if not (folder / "done").is_file():
        model = None
        chunk = cfg.expert_steps // 5
        folder.mkdir(parents=True, exist_ok=True)
        for k in tqdm(range(5), desc=f"expert {cfg.env}", disable=not cfg.progress):
            model = train_ppo(cfg.env, chunk, cfg.ppo, cfg.seed, model=model)
            model.save(folder / f"ckpt-{k}.zip")
            (folder / f"ckpt-{k}.rms.pkl").write_bytes(pickle.dumps(model.get_env().obs_rms))
        (folder / "done").write_text("5\n")
    pool = []
    for k in range(5):
        rms = pickle.loads(Path(folder / f"ckpt-{k}.rms.pkl").read_bytes())
        pool.append((PPO.load(folder / f"ckpt-{k}.zip", device="cpu"), rms))
    return pool


def run_mujoco(cfg: MujocoConfig) -> dict[str, Any]:
    out = results_dir("aihf", cfg.name)
    runs = JsonlCache(out / f"runs-sb3-{runs_key(cfg)}.jsonl")
    pool = train_expert(cfg)
    expert, rms = pool[-1]
    rng = np.random.default_rng(cfg.seed)
    demos = rollout(expert, rms, cfg.env, cfg.n_demo, seed=10_000 + cfg.seed)
    behaviour = [
        ep
        for i, (p, r) in enumerate(pool)
        for ep in rollout(p, r, cfg.env, 4, seed=20_000 + 10 * i, noise=0.3)
    ]
    max_pref = max(cfg.n_prefs)
    a_obs, a_act, a_ret = segments(behaviour, max_pref, cfg.segment, rng)
    b_obs, b_act, b_ret = segments(behaviour, max_pref, cfg.segment, rng)
    if cfg.pref_temperature > 0:
        a_wins = rng.random(max_pref) < 1 / (1 + np.exp(-(a_ret - b_ret) / cfg.pref_temperature))
    else:
        a_wins = a_ret >= b_ret
    w = a_wins[:, None, None]
    chosen = (np.where(w, a_obs, b_obs), np.where(w, a_act, b_act))
    rejected = (np.where(w, b_obs, a_obs), np.where(w, b_act, a_act))
    refs = {
        "expert": evaluate(expert, rms, cfg.env, cfg.eval_episodes, 30_000),
        "demonstrations (stochastic)": float(np.mean([ep["rew"].sum() for ep in demos])),
        "behaviour pool": float(np.mean([ep["rew"].sum() for ep in behaviour])),
    }
    obs_dim, act_dim = demos[0]["obs"].shape[1], demos[0]["act"].shape[1]

    def new_reward() -> RewardNet:
        torch.manual_seed(cfg.seed)
        return RewardNet(obs_dim, act_dim, rms.mean, rms.var, cfg.ppo.hidden)

    def bc() -> tuple[Any, dict[str, Any]]:
        """A fresh PPO model (true-reward env, for evaluation) and its BC policy state."""
        model = new_ppo(normalized(make_venv(cfg.env, 1, cfg.seed, learned=False), rms), cfg.ppo, cfg.seed)
        return model, behavior_cloning(model, rms, demos, cfg.bc_steps)

    def pref_reward(n: int) -> RewardNet:
        reward = new_reward()
        opt = torch.optim.Adam(reward.net.parameters(), lr=cfg.reward_lr)
        c, r = (chosen[0][:n], chosen[1][:n]), (rejected[0][:n], rejected[1][:n])
        for _ in range(cfg.reward_steps):
            loss = explicit_reward_loss(
                None, None, reward.segment_return(c), reward.segment_return(r), 0.0, 1.0
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return reward

    demo_segs = segments(demos, 64, cfg.segment, np.random.default_rng(cfg.seed + 1))

    def aihf(n: int) -> Any:
        reward = pref_reward(n) if cfg.w_pref > 0 else new_reward()  # warm start: RLHF's preference fit
        opt = torch.optim.Adam(reward.net.parameters(), lr=cfg.reward_lr)
        c, r = (chosen[0][:n], chosen[1][:n]), (rejected[0][:n], rejected[1][:n])
        seg_rng = np.random.default_rng(cfg.seed + 2)

        def reward_step(obs: np.ndarray, act_: np.ndarray) -> None:
            T = obs.shape[0]  # (T, n_envs, d): the policy's own fresh samples
            for _ in range(cfg.aihf_reward_steps):
                starts = seg_rng.integers(T - cfg.segment + 1, size=64)
                envs = seg_rng.integers(obs.shape[1], size=64)
                p_obs = np.stack([obs[s : s + cfg.segment, e] for s, e in zip(starts, envs, strict=True)])
                p_act = np.stack([act_[s : s + cfg.segment, e] for s, e in zip(starts, envs, strict=True)])
                loss = explicit_reward_loss(
                    reward.segment_return(demo_segs[:2]),
                    reward.segment_return((p_obs, p_act)),
                    reward.segment_return(c) if cfg.w_pref > 0 else None,
                    reward.segment_return(r) if cfg.w_pref > 0 else None,
                    w_demo=cfg.w_demo,
                    w_pref=cfg.w_pref,
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        _, state = bc()
        return train_ppo(
            cfg.env,
            cfg.rl_steps,
            cfg.ppo,
            cfg.seed,
            policy_state=state,
            obs_rms=rms,
            reward=reward,
            on_rollout=reward_step,
            lr=cfg.finetune_lr,
        )

    def train_method(method: str, n: int) -> tuple[Any, Any]:
        if method == "BC":
            model, state = bc()
            model.policy.load_state_dict(state)
            return model, rms
        if method == "AIHF":
            model = aihf(n)
        else:  # the preference reward; RL from scratch, or staged from BC
            from_bc = method == "RLHF"
            model = train_ppo(
                cfg.env,
                cfg.rl_steps,
                cfg.ppo,
                cfg.seed,
                policy_state=bc()[1] if from_bc else None,
                obs_rms=rms if from_bc else None,
                reward=pref_reward(n),
                lr=cfg.finetune_lr if from_bc else None,
            )
        return model, model.get_env().obs_rms

    jobs = [(m, n) for n in cfg.n_prefs for m in cfg.methods]
    for method, n in tqdm(jobs, desc="aihf-mujoco runs", disable=not cfg.progress):
        key = f"{method}|{n}"
        if key in runs:
            continue
        if method == "BC" and f"BC|{cfg.n_prefs[0]}" in runs:
            score = runs.get(f"BC|{cfg.n_prefs[0]}")["return"]
        else:
            score = evaluate(*train_method(method, n), cfg.env, cfg.eval_episodes, 30_000)
        runs.append({"key": key, "method": method, "n_pref": n, "return": score})
        log.info("%s n_pref=%d: return %.1f", method, n, score)
    table = {m: [runs.get(f"{m}|{n}")["return"] for n in cfg.n_prefs] for m in cfg.methods}
    rows = [
        {"method": m, **{f"n_pref={n}": v for n, v in zip(cfg.n_prefs, table[m], strict=True)}}
        for m in cfg.methods
    ]
    rows += [{"method": f"({k})", **{f"n_pref={n}": v for n in cfg.n_prefs}} for k, v in refs.items()]
    series = dict(table)
    series["(expert)"] = [refs["expert"]] * len(cfg.n_prefs)
    plot_lines(
        out / "return_vs_n_pref.png",
        cfg.n_prefs,
        series,
        xlabel="preference pairs (segments)",
        ylabel=f"{cfg.env} true return",
        title=f"aihf-mujoco: {cfg.env}, seed {cfg.seed}",
        logx=True,
    )
    metrics = {
        "config": asdict(cfg),
        "return": table,
        "references": refs,
        "mean_over_n_pref": {m: statistics.fmean(v) for m, v in table.items()},
    }
    notes = (
        f"{cfg.env}: expert SB3 PPO {cfg.expert_steps} steps; {cfg.n_demo} demonstration episodes; preference pairs "
        f"of {cfg.segment}-step segments from a pool of 5 expert checkpoints with action noise, labelled by true "
        f"return; every RL method {cfg.rl_steps} PPO steps (stable-baselines3); one seed ({cfg.seed}); "
        f"deterministic evaluation over {cfg.eval_episodes} episodes. The paper's MuJoCo figures use far longer "
        "runs (SAC, millions of steps)."
    )
    write_results(
        out,
        metrics,
        rows=rows,
        title=f"aihf-mujoco: true return vs preference pairs ({cfg.env})",
        notes=notes,
        floatfmt=".0f",
    )
    print((out / "results.md").read_text())
    return metrics
