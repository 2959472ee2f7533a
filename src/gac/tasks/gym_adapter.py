"""A ``gymnasium.Env`` view of a gac task environment, for libraries that need one (d3rlpy peers).

gac's own envs are plain objects (``reset(seed) -> obs``, no spaces, no time limit: gac counts
steps itself). ``GymTaskEnv`` adds Box spaces, the Gymnasium reset signature and truncation at
the task's horizon, so an external learner sees exactly the episodes gac evaluates on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from gac.tasks import get_task


class GymTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """Wraps ``env_factory()`` (a gac task env) as a Gymnasium env truncated at ``horizon``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_factory: Callable[[], Any], horizon: int):
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.env = env_factory()
        self.horizon = int(horizon)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.env.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(np.float32(self.env.action_low), np.float32(self.env.action_high),
                                           (self.env.act_dim,), np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # seed=None continues the inner env's own RNG, so unseeded resets still vary by episode.
        obs = self.env.reset(seed=seed)
        self._t = 0
        return np.asarray(obs, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # Learners may emit slightly out-of-range actions (noise, float error): clip to the space
        # the data were collected in rather than let the simulator see them.
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low,
                         self.action_space.high)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        truncated = bool(truncated) or self._t >= self.horizon
        return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), truncated, dict(info)

    def close(self) -> None:
        self.env.close()


def make_gym_env(task_name: str) -> GymTaskEnv:
    """The evaluation environment of a gac task as a Gymnasium env (horizon = the task's)."""
    task = get_task(task_name)
    return GymTaskEnv(task.make_env, task.horizon)
