"""Behaviour policies as plain numpy: the actor of an SB3 PPO policy (observation scaling, an
MLP for the Gaussian mean, a state-independent log std), and one episode of any numpy policy.
Making datasets from the committed policies needs only this (no SB3, no torch, no GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# The locomotion bodies' episode limit (gac.tasks.locomotion.HORIZON; a test keeps them equal).
HORIZON = 1000


@dataclass
class PlainActor:
    """An SB3 PPO actor in numpy: VecNormalize's observation scaling, an MLP for the Gaussian
    mean, a state-independent log std; actions are clipped to the box, as SB3 does."""

    weights: list[np.ndarray]  # (in, out) per layer, the last one is the action head
    biases: list[np.ndarray]
    log_std: np.ndarray
    obs_mean: np.ndarray
    obs_var: np.ndarray
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    activation: str = "tanh"
    action_low: float = -1.0
    action_high: float = 1.0

    def mean(self, obs: np.ndarray) -> np.ndarray:
        x = np.clip((np.asarray(obs, np.float64) - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon),
                    -self.clip_obs, self.clip_obs)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = x @ w + b
            x = np.tanh(x) if self.activation == "tanh" else np.maximum(x, 0.0)
        return x @ self.weights[-1] + self.biases[-1]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The policy's own stochastic action with ``rng``, its mean action without."""
        mu = self.mean(obs)
        if rng is not None:
            mu = mu + np.exp(self.log_std) * rng.standard_normal(mu.shape)
        return np.clip(mu, self.action_low, self.action_high)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = {f"{prefix}w{i}": w for i, w in enumerate(self.weights)}
        out.update({f"{prefix}b{i}": b for i, b in enumerate(self.biases)})
        out.update({f"{prefix}log_std": self.log_std, f"{prefix}obs_mean": self.obs_mean,
                    f"{prefix}obs_var": self.obs_var,
                    f"{prefix}scalars": np.array([self.clip_obs, self.epsilon, self.action_low,
                                                  self.action_high]),
                    f"{prefix}activation": np.array(self.activation)})
        return out

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str = "") -> PlainActor:
        n = sum(1 for k in arrays if k.startswith(f"{prefix}w") and k[len(prefix) + 1:].isdigit())
        if n == 0:
            raise KeyError(f"no actor weights under prefix {prefix!r}")
        clip_obs, eps, low, high = (float(v) for v in arrays[f"{prefix}scalars"])
        return cls([np.asarray(arrays[f"{prefix}w{i}"]) for i in range(n)],
                   [np.asarray(arrays[f"{prefix}b{i}"]) for i in range(n)],
                   np.asarray(arrays[f"{prefix}log_std"]), np.asarray(arrays[f"{prefix}obs_mean"]),
                   np.asarray(arrays[f"{prefix}obs_var"]), clip_obs, eps,
                   str(arrays[f"{prefix}activation"]), low, high)


def export_actor(model: Any, venv: Any) -> PlainActor:
    """The PlainActor of an SB3 PPO model trained on a VecNormalize env."""
    import torch

    policy = model.policy
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    linears.append(policy.action_net)
    act = policy.activation_fn.__name__.lower()
    if act not in ("tanh", "relu"):
        raise ValueError(f"unsupported activation {act}")
    low, high = float(venv.action_space.low[0]), float(venv.action_space.high[0])
    return PlainActor(
        [m.weight.detach().cpu().numpy().T.astype(np.float32) for m in linears],
        [m.bias.detach().cpu().numpy().astype(np.float32) for m in linears],
        policy.log_std.detach().cpu().numpy().astype(np.float32),
        venv.obs_rms.mean.astype(np.float64), venv.obs_rms.var.astype(np.float64),
        float(venv.clip_obs), float(venv.epsilon), act, low, high)


Policy = Callable[[np.ndarray], np.ndarray]


def run_episode(env: Any, policy: Policy, seed: int | None,
                horizon: int = HORIZON) -> dict[str, np.ndarray | float | bool]:
    """One episode on an env with gac's interface (``reset(seed) -> obs``, ``step(action) ->
    (obs, reward, terminated, truncated, info)``): observations, actions, rewards, whether it
    ended by a true termination."""
    obs = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    terminated = False
    for _ in range(horizon):
        action = np.asarray(policy(obs), dtype=np.float32)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, _, _ = env.step(action)
        rewards.append(reward)
        if terminated:
            break
    return {"observations": np.array(observations, np.float32),
            "actions": np.array(actions, np.float32),
            "rewards": np.array(rewards, np.float32), "terminal": bool(terminated),
            "ret": float(np.sum(rewards, dtype=np.float64))}

