"""Maze2D-class datasets made the way D4RL made maze2d.

A waypoint controller drives a point mass to random goal cells, one after another, without ever
resetting the simulation; Gaussian noise is added to its actions. The stream is stored in the D4RL
layout: ``timeouts`` mark goal changes (segment ends), the reward is D4RL's sparse (or dense)
reward relative to the current goal, and ``infos/goal`` holds that goal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from gac.data.store import TrajectoryStore
from gac.tasks import MazeTask
from gac.tasks.maze import MazeEnv, WaypointController, open_cells


@dataclass
class MazeDataConfig:
    steps: int = 200_000
    noise: float = 0.5  # std of Gaussian action noise (D4RL's --noisy used 0.5)
    goal_noise: float = 0.1  # goals are cell centres + U(-0.1, 0.1), as in D4RL's set_target
    reach_radius: float = 0.1  # a goal counts as reached within this distance (D4RL: 0.1)
    seed: int = 0
    reference_episodes: int = 100


def generate_maze_dataset(task: MazeTask, cfg: MazeDataConfig, progress: bool = True
                          ) -> tuple[TrajectoryStore, np.ndarray]:
    """Return the dataset and its per-step goals (``infos/goal``)."""
    rng = np.random.default_rng(cfg.seed)
    env = task.make_env()
    controller = WaypointController(env.maze)
    cells = open_cells(env.maze)
    env.reset(seed=cfg.seed)

    n = cfg.steps
    obs = np.empty((n, env.obs_dim), np.float32)
    actions = np.empty((n, 2), np.float32)
    rewards = np.empty(n, np.float32)
    goals = np.empty((n, 2), np.float32)
    timeouts = np.zeros(n, bool)

    def new_goal() -> None:
        cell = cells[rng.integers(len(cells))]
        centre = np.asarray(env.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64)
        env.set_goal(centre + rng.uniform(-cfg.goal_noise, cfg.goal_noise, size=2))

    new_goal()
    segment = 0
    bar = tqdm(total=n, desc=f"generating {task.name}", unit="step", disable=not progress,
               mininterval=0.5)
    for i in range(n):
        pos, vel = env.position, env.velocity
        obs[i] = env.observation()
        goals[i] = env.goal
        action = controller(pos, vel, env.goal) + cfg.noise * rng.standard_normal(2)
        actions[i] = np.clip(action, -1.0, 1.0)
        _, rewards[i], _, _, _ = env.step(actions[i])
        segment += 1
        reached = np.linalg.norm(env.position - env.goal) < cfg.reach_radius
        if reached or segment >= task.horizon:
            timeouts[i] = True
            segment = 0
            new_goal()
        if i % 2000 == 1999:
            bar.update(2000)
    bar.update(n - bar.n)
    bar.close()
    timeouts[-1] = True

    ends = np.flatnonzero(timeouts)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    store = TrajectoryStore(
        observations=obs, actions=actions, rewards=rewards,
        terminals=np.zeros(n, bool), timeouts=timeouts, starts=starts,
        returns=np.add.reduceat(rewards.astype(np.float64), starts),
        metadata={
            "task": task.name,
            "generator": "gac.data.maze_generator (waypoint controller, D4RL recipe)",
            "seed": cfg.seed,
            "noise": cfg.noise,
            "env_id": task.spec.env_id,
            "obs_layout": "x,y,vx,vy,gx,gy" if task.goal_in_obs else "x,y,vx,vy",
            "horizon": task.horizon,
            "d4rl_dataset": task.d4rl_dataset,
        },
    )
    env.close()
    if cfg.reference_episodes > 0:
        r_random, r_expert = measure_references(task, cfg.reference_episodes, seed=cfg.seed + 1)
        store.metadata.update(ref_min_score=r_random, ref_max_score=r_expert,
                              ref_episodes=cfg.reference_episodes)
    return store, goals


def rollout_policy(env: MazeEnv, policy, horizon: int, seed: int) -> float:
    """Return of one evaluation episode of ``policy(pos, vel, goal) -> action``."""
    env.reset(seed=seed)
    total = 0.0
    for _ in range(horizon):
        _, reward, _, _, _ = env.step(policy(env.position, env.velocity, env.goal))
        total += reward
    return total


def measure_references(task: MazeTask, episodes: int, seed: int = 1) -> tuple[float, float]:
    """(R_random, R_expert) on the evaluation task: uniform random actions, and the noiseless
    waypoint controller driving to the fixed goal (and holding there), averaged over episodes."""
    env = task.make_env()
    controller = WaypointController(env.maze)
    rng = np.random.default_rng(seed)

    def random_policy(pos, vel, goal):
        return rng.uniform(-1.0, 1.0, size=2)

    r_random = np.mean([rollout_policy(env, random_policy, task.horizon, seed + 2 * k)
                        for k in range(episodes)])
    r_expert = np.mean([rollout_policy(env, controller, task.horizon, seed + 2 * k + 1)
                        for k in range(episodes)])
    env.close()
    return float(r_random), float(r_expert)
