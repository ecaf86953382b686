"""The reinforcement-learning side of ``aihf-mujoco``: stable-baselines3's PPO on a (learned-reward) vector env,
rollouts, evaluation and behaviour cloning. The reward learning the paper is about stays in :mod:`aihf.mujoco`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from aihf.mujoco import RewardNet


def _gym():
    try:
        import gymnasium
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ImportError("aihf-mujoco needs gymnasium[mujoco]: `pip install 'gymnasium[mujoco]'`") from err
    return gymnasium


@dataclass
class PPOConfig:
    """stable-baselines3 PPO settings (``n_steps`` per env per update, ``minibatch`` = SB3's ``batch_size``)."""

    n_envs: int = 4
    n_steps: int = 512
    epochs: int = 10
    minibatch: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.0
    hidden: int = 64


def make_venv(env_id: str, n: int, seed: int, learned: bool):
    """``n`` copies in SB3's ``DummyVecEnv``; with a learned reward, an env that ends episodes when "unhealthy"
    (Hopper, Walker, Ant) does not (no alive-bonus shortcut); envs without that option (HalfCheetah) are made as
    they are."""
    from stable_baselines3.common.env_util import make_vec_env

    if learned:
        try:
            return make_vec_env(env_id, n_envs=n, seed=seed, env_kwargs={"terminate_when_unhealthy": False})
        except TypeError as err:
            if "terminate_when_unhealthy" not in str(err):
                raise
    return make_vec_env(env_id, n_envs=n, seed=seed)


def learned_reward_env(venv: Any, reward: RewardNet) -> Any:
    """A ``VecEnvWrapper`` whose step reward is ``reward(s, a)`` (``s`` the raw observation the action was taken
    in); it keeps the raw ``(obs, act)`` of every step since the last :meth:`take`, the policy's own fresh samples
    for AIHF's reward step."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class LearnedReward(VecEnvWrapper):
        def __init__(self) -> None:
            super().__init__(venv)
            self.reward, self.obs, self.seen = reward, None, []

        def reset(self):
            self.obs = self.venv.reset()
            return self.obs

        def step_async(self, actions: np.ndarray) -> None:
            self.act = np.clip(actions, self.action_space.low, self.action_space.high)
            self.venv.step_async(actions)

        def step_wait(self):
            nxt, _, dones, infos = self.venv.step_wait()
            with torch.no_grad():
                r = self.reward(self.obs, self.act).numpy().astype(np.float32)
            self.seen.append((self.obs.copy(), self.act.copy()))
            self.obs = nxt
            return nxt, r, dones, infos

        def take(self) -> tuple[np.ndarray, np.ndarray]:
            """The recorded ``(obs (T, n_envs, d), act (T, n_envs, k))``, cleared."""
            obs, act = np.stack([o for o, _ in self.seen]), np.stack([a for _, a in self.seen])
            self.seen = []
            return obs, act

    return LearnedReward()


def new_ppo(env: Any, cfg: PPOConfig, seed: int, lr: float | None = None) -> Any:
    """SB3 PPO with the package's settings on ``env`` (a ``VecNormalize``-wrapped vector env)."""
    from stable_baselines3 import PPO

    return PPO(
        "MlpPolicy",
        env,
        n_steps=cfg.n_steps,
        batch_size=cfg.minibatch,
        n_epochs=cfg.epochs,
        learning_rate=cfg.lr if lr is None else lr,
        gamma=cfg.gamma,
        gae_lambda=cfg.lam,
        clip_range=cfg.clip,
        ent_coef=cfg.ent_coef,
        max_grad_norm=0.5,
        policy_kwargs={"net_arch": [cfg.hidden, cfg.hidden], "log_std_init": -0.5},
        seed=seed,
        device="cpu",
        verbose=0,
    )


def normalized(venv: Any, obs_rms: Any | None) -> Any:
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=0.99)
    if obs_rms is not None:
        env.obs_rms = obs_rms.copy()
    return env


def train_ppo(
    env_id: str,
    steps: int,
    cfg: PPOConfig,
    seed: int,
    *,
    policy_state: dict[str, Any] | None = None,
    obs_rms: Any | None = None,
    reward: RewardNet | None = None,
    on_rollout: Any = None,
    lr: float | None = None,
    model: Any = None,
) -> Any:
    """SB3 PPO for ``steps`` environment steps on the true reward, or on ``reward`` (a learned ``r(s, a)``).
    ``policy_state``/``obs_rms`` start from a given policy (BC) and observation statistics; ``on_rollout(obs, act)``
    runs after each rollout with the policy's raw samples (AIHF's reward step). ``model`` continues a PPO already
    built (the expert's chunks). Returns the PPO model (its env a ``VecNormalize``)."""
    from stable_baselines3.common.callbacks import BaseCallback

    if model is None:
        venv = make_venv(env_id, cfg.n_envs, seed, learned=reward is not None)
        recorder = learned_reward_env(venv, reward) if reward is not None else None
        model = new_ppo(normalized(recorder or venv, obs_rms), cfg, seed, lr)
        if policy_state is not None:
            model.policy.load_state_dict(policy_state)
    callback = None
    if on_rollout is not None:
        recorder = model.get_env().venv

        class ReRewardStep(BaseCallback):
            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                on_rollout(*recorder.take())

        callback = ReRewardStep()
    model.learn(total_timesteps=steps, callback=callback, reset_num_timesteps=False, progress_bar=False)
    return model


def act(model: Any, obs_rms: Any, raw: np.ndarray, deterministic: bool) -> np.ndarray:
    """The policy's action for raw observations ``(n, d)``, normalised with ``obs_rms`` as in training."""
    obs = np.clip((raw - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10).astype(np.float32)
    action, _ = model.predict(obs, deterministic=deterministic)
    return action


def rollout(
    model: Any,
    obs_rms: Any,
    env_id: str,
    episodes: int,
    seed: int,
    noise: float = 0.0,
    deterministic: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Episodes of the policy in the standard environment: raw obs, act, true reward per step."""
    env = _gym().make(env_id)
    rng = np.random.default_rng(seed)
    space = env.action_space
    out = []
    for ep in range(episodes):
        raw, _ = env.reset(seed=seed + ep)
        obs, acts, rews = [], [], []
        done = False
        while not done:
            a = act(model, obs_rms, raw[None], deterministic)[0]
            a = np.clip(a + noise * rng.standard_normal(a.shape), space.low, space.high).astype(np.float32)
            obs.append(raw)
            acts.append(a)
            raw, r, term, trunc, _ = env.step(a)
            rews.append(r)
            done = term or trunc
        out.append({"obs": np.array(obs), "act": np.array(acts, dtype=np.float32), "rew": np.array(rews)})
    env.close()
    return out


def evaluate(model: Any, obs_rms: Any, env_id: str, episodes: int, seed: int) -> float:
    """Mean true return of the deterministic policy over ``episodes``."""
    eps = rollout(model, obs_rms, env_id, episodes, seed, deterministic=True)
    return float(np.mean([ep["rew"].sum() for ep in eps]))


def behavior_cloning(
    model: Any, obs_rms: Any, demos: list[dict[str, np.ndarray]], steps: int, lr: float = 1e-3
):
    """Maximum likelihood of the demonstrated actions under the PPO policy's Gaussian (mean network and log-std;
    the value network untouched). Returns the policy's state dict."""
    policy = model.policy
    raw = np.concatenate([ep["obs"] for ep in demos])
    obs = torch.as_tensor(
        np.clip((raw - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10), dtype=torch.float32
    )
    actions = torch.as_tensor(np.concatenate([ep["act"] for ep in demos]))
    params = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters(), policy.log_std]
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(0)
    policy.set_training_mode(True)
    for _ in range(steps):
        idx = torch.randint(obs.shape[0], (256,), generator=g)
        loss = -policy.get_distribution(obs[idx]).log_prob(actions[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    policy.set_training_mode(False)
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def bc_nll(model: Any, obs_rms: Any, demos: list[dict[str, np.ndarray]]) -> float:
    """Mean negative log-likelihood of the demonstrated actions under the policy."""
    raw = np.concatenate([ep["obs"] for ep in demos])
    obs = torch.as_tensor(
        np.clip((raw - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10), dtype=torch.float32
    )
    with torch.no_grad():
        dist = model.policy.get_distribution(obs)
        return float(-dist.log_prob(torch.as_tensor(np.concatenate([ep["act"] for ep in demos]))).mean())
