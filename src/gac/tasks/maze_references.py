"""Reference returns of the maze tasks, measured on their evaluation env: uniform random
actions (R_random), the noiseless waypoint controller (R_expert), and the data's noisy
controller (the behaviour policy). The controller sees and acts in PointMaze's frame; each env
converts (``pm_state``, ``action_from_pm``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from gac.atomic import write_text
from gac.paths import cache_dir
from gac.tasks.maze import WaypointController

Policy = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def rollout_policy(env: Any, policy: Policy, horizon: int, seed: int) -> float:
    """Return of one evaluation episode of ``policy(pos, vel, goal) -> action``, where the
    policy sees and acts in PointMaze's frame (the env converts for D4RL's frame)."""
    env.reset(seed=seed)
    total = 0.0
    for _ in range(horizon):
        pos, vel, goal = env.pm_state()
        _, reward, _, _, _ = env.step(env.action_from_pm(policy(pos, vel, goal)))
        total += reward
    return total


def measure_references(task: Any, episodes: int, seed: int = 1
                       ) -> tuple[float, float]:
    """(R_random, R_expert) on the evaluation task: uniform random actions, and the noiseless
    waypoint controller driving to the fixed goal (and holding there), averaged over episodes."""
    env = task.make_env()
    controller = WaypointController(env.maze)
    rng = np.random.default_rng(seed)

    def random_policy(pos: Any, vel: Any, goal: Any) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=2)

    r_random = np.mean([rollout_policy(env, random_policy, task.horizon, seed + 2 * k)
                        for k in range(episodes)])
    r_expert = np.mean([rollout_policy(env, controller, task.horizon, seed + 2 * k + 1)
                        for k in range(episodes)])
    env.close()
    return float(r_random), float(r_expert)


def measured_references(task: Any, episodes: int = 100
                        ) -> tuple[float, float, int]:
    """``measure_references`` for files that carry none (a user's D4RL file), measured once per
    task and cached in the cache folder: (R_random, R_expert, episodes)."""
    path = cache_dir() / "references" / f"{task.name}-{episodes}.json"
    if path.exists():
        d = json.loads(path.read_text())
        return float(d["ref_min_score"]), float(d["ref_max_score"]), int(d["episodes"])
    lo, hi = measure_references(task, episodes, seed=1)
    write_text(path, json.dumps({"ref_min_score": lo, "ref_max_score": hi, "episodes": episodes}))
    return lo, hi, episodes


def measure_behaviour(task: Any, episodes: int, noise: float, seed: int = 2
                      ) -> float:
    """Mean return on the evaluation task of the policy that collected the data: the waypoint
    controller with the same action noise (the maze analogue of a dataset's average return).
    On maze2d it drives to the evaluation goal, which the data's controller rarely does: an
    upper reference, not the data's own level."""
    env = task.make_env()
    controller = WaypointController(env.maze)
    rng = np.random.default_rng(seed)

    def noisy(pos: Any, vel: Any, goal: Any) -> np.ndarray:
        return np.clip(controller(pos, vel, goal) + noise * rng.standard_normal(2), -1.0, 1.0)

    mean = np.mean([rollout_policy(env, noisy, task.horizon, seed + k) for k in range(episodes)])
    env.close()
    return float(mean)
