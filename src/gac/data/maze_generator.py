"""Maze datasets made the way D4RL made maze2d.

A waypoint controller drives a point mass to random goal cells, one after another, without ever
resetting the simulation; Gaussian noise is added to its actions. The stream is stored in the D4RL
layout: ``timeouts`` mark goal changes (segment ends) and ``infos/goal`` holds the current goal.

- ``generate_maze2d_dataset`` (``maze2d-*``) follows D4RL's ``generate_maze2d_datasets.py`` and
  ``relabel_maze2d_rewards.py``: no dwell at a goal, the observation not advanced on the row
  after a goal change (D4RL's repeated row), every step rewarded for the fixed evaluation goal
  from the recorded simulator position (``infos/qpos``, as D4RL's relabelling), D4RL's frame.
- ``generate_maze_dataset`` (``pointmaze-*-goal``): the goal-conditioned variant, with the goal in
  the observation, rewards for the current goal, a dwell at each reached goal, and every row's
  observation following from the previous one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from gac.data.store import TrajectoryStore
from gac.tasks.maze import GOAL_RADIUS, FastWaypointPolicy, MazeTask, WaypointController, open_cells
from gac.tasks.maze2d import Maze2DTask
from gac.tasks.maze_references import (  # noqa: F401  (re-exported: where they used to live)
    measure_behaviour,
    measure_references,
    measured_references,
    rollout_policy,
)


@dataclass
class MazeDataConfig:
    steps: int = 200_000
    noise: float = 0.5  # std of Gaussian action noise (D4RL's --noisy used 0.5)
    goal_noise: float = 0.1  # goals are cell centres + U(-0.1, 0.1), as in D4RL's set_target
    reach_radius: float = 0.1  # a goal counts as reached within this distance (D4RL: 0.1)
    # Steps the controller keeps holding a reached goal before the next one (D4RL: 0). The
    # evaluation rewards every step spent at the goal, and a policy can only learn to hold
    # there from data that show it.
    dwell: int = 25
    seed: int = 0
    reference_episodes: int = 100

    def check(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.noise < 0 or self.goal_noise < 0 or self.reach_radius <= 0:
            raise ValueError(f"noise and goal_noise must be >= 0 and reach_radius > 0, got "
                             f"{self.noise}, {self.goal_noise}, {self.reach_radius}")
        if self.dwell < 0:
            raise ValueError(f"dwell must be >= 0, got {self.dwell}")
        if self.reference_episodes < 0:
            raise ValueError(f"reference_episodes must be >= 0, got {self.reference_episodes}")


def generate_maze_dataset(task: MazeTask, cfg: MazeDataConfig, progress: bool = True
                          ) -> tuple[TrajectoryStore, np.ndarray]:
    """Return the dataset and its per-step goals (``infos/goal``). Deterministic given the seed."""
    cfg.check()
    # Separate streams: all action noise is drawn up front, goals as they are needed.
    goal_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(2))
    env = task.make_env()
    policy = FastWaypointPolicy(WaypointController(env.maze))
    cells = open_cells(env.maze)
    env.reset(seed=cfg.seed)

    n = cfg.steps
    obs = np.empty((n, env.obs_dim), np.float32)
    actions = np.empty((n, 2), np.float32)
    rewards = np.empty(n, np.float32)
    timeouts = np.zeros(n, bool)
    noise = (cfg.noise * noise_rng.standard_normal((n, 2))).tolist()
    goal_changes: list[tuple[int, float, float]] = []  # (first row, gx, gy)

    def new_goal(row: int) -> tuple[float, float, list[list[tuple[float, float] | None]]]:
        cell = cells[goal_rng.integers(len(cells))]
        centre = np.asarray(env.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64)
        env.set_goal(centre + goal_rng.uniform(-cfg.goal_noise, cfg.goal_noise, size=2))
        gx, gy = env.goal.tolist()
        goal_changes.append((row, gx, gy))
        return gx, gy, policy.table(policy.cell(gx, gy))

    gx, gy, table = new_goal(0)
    x, y = env.position.tolist()
    vx, vy = env.velocity.tolist()
    o = env.observation()
    radius, horizon = cfg.reach_radius, task.horizon
    segment = 0
    holding = -1  # steps left at a reached goal; -1 while still driving to it
    bar = tqdm(total=n, desc=f"generating {task.name}", unit="step", disable=not progress,
               mininterval=0.5)
    # Hot loop: plain floats and one env.step per row (see FastWaypointPolicy).
    for i in range(n):
        obs[i] = o
        ax, ay = policy.act(x, y, vx, vy, gx, gy, table)
        nx, ny = noise[i]
        ax, ay = min(max(ax + nx, -1.0), 1.0), min(max(ay + ny, -1.0), 1.0)
        action = np.array((ax, ay), np.float32)  # step with exactly the stored action
        actions[i] = action
        o, rewards[i], _, _, _ = env.step(action)
        x, y = env.position.tolist()
        vx, vy = env.velocity.tolist()
        segment += 1
        if holding < 0 and math.sqrt((x - gx) ** 2 + (y - gy) ** 2) < radius:
            holding = cfg.dwell
        else:
            holding -= holding > 0
        if holding == 0 or segment >= horizon:
            timeouts[i] = True
            segment = 0
            holding = -1
            if i + 1 < n:
                gx, gy, table = new_goal(i + 1)
                o = env.observation()  # the goal is part of the observation
        if i % 2000 == 1999:
            bar.update(2000)
    bar.update(n - bar.n)
    bar.close()
    timeouts[-1] = True
    env.close()

    goals = np.empty((n, 2), np.float32)
    for k, (row, ggx, ggy) in enumerate(goal_changes):
        end = goal_changes[k + 1][0] if k + 1 < len(goal_changes) else n
        goals[row:end] = (ggx, ggy)

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
            "dwell": cfg.dwell,
            "env_id": task.spec.env_id,
            "obs_layout": "x,y,vx,vy,gx,gy" if task.goal_in_obs else "x,y,vx,vy",
            "horizon": task.horizon,
            "d4rl_dataset": task.d4rl_dataset,
            "action_low": env.action_low,
            "action_high": env.action_high,
        },
    )
    if cfg.reference_episodes > 0:
        r_random, r_expert = measure_references(task, cfg.reference_episodes, seed=cfg.seed + 1)
        store.metadata.update(ref_min_score=r_random, ref_max_score=r_expert,
                              ref_episodes=cfg.reference_episodes,
                              behavior_return=measure_behaviour(task, cfg.reference_episodes,
                                                                cfg.noise, seed=cfg.seed + 2))
    return store, goals


def generate_maze2d_dataset(task: Maze2DTask, cfg: MazeDataConfig, progress: bool = True
                            ) -> tuple[TrajectoryStore, dict[str, np.ndarray]]:
    """D4RL's maze2d recipe (see the module docstring), deterministic given the seed. Returns
    the store (episodes: the goal segments) and the ``infos/*`` fields of D4RL's files."""
    cfg.check()
    goal_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(2))
    env = task.make_env()
    inner = env._maze_env  # the controller and the generator work in PointMaze's frame
    policy = FastWaypointPolicy(WaypointController(env.maze))
    cells = open_cells(env.maze)
    env.reset(seed=cfg.seed)

    n = cfg.steps
    obs_pm = np.empty((n, 4), np.float64)  # what the row records (stale after a goal change)
    qpos = np.empty((n, 2), np.float64)  # the simulator's state at the row (infos/qpos)
    qvel = np.empty((n, 2), np.float64)
    actions = np.empty((n, 2), np.float32)
    goals = np.empty((n, 2), np.float64)
    timeouts = np.zeros(n, bool)
    noise = (cfg.noise * noise_rng.standard_normal((n, 2))).tolist()

    def new_goal() -> tuple[float, float, list]:
        cell = cells[goal_rng.integers(len(cells))]
        centre = np.asarray(env.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64)
        gx, gy = (centre + goal_rng.uniform(-cfg.goal_noise, cfg.goal_noise, size=2)).tolist()
        return gx, gy, policy.table(policy.cell(gx, gy))

    gx, gy, table = new_goal()
    data = inner.data
    x, y = data.qpos[:2].tolist()
    vx, vy = data.qvel[:2].tolist()
    radius, horizon = cfg.reach_radius, task.horizon
    segment = 0
    bar = tqdm(total=n, desc=f"generating {task.name}", unit="step", disable=not progress,
               mininterval=0.5)
    for i in range(n):
        obs_pm[i] = (x, y, vx, vy)
        qpos[i] = data.qpos[:2]
        qvel[i] = data.qvel[:2]
        goals[i] = (gx, gy)
        # D4RL's controller acts on the recorded observation and says "done" within 0.1 of
        # the goal; the segment also ends after max_episode_steps.
        done = math.sqrt((x - gx) ** 2 + (y - gy) ** 2) < radius or segment >= horizon
        ax, ay = policy.act(x, y, vx, vy, gx, gy, table)
        nx, ny = noise[i]
        action = np.array((min(max(ax + nx, -1.0), 1.0), min(max(ay + ny, -1.0), 1.0)), np.float32)
        actions[i] = action
        inner.advance(action)  # PointEnv.step's physics, without its observation
        segment += 1
        if done:
            timeouts[i] = True
            segment = 0
            gx, gy, table = new_goal()  # and the observation is not advanced (D4RL's repeat)
        else:
            x, y = data.qpos[:2].tolist()
            vx, vy = data.qvel[:2].tolist()
        if i % 2000 == 1999:
            bar.update(2000)
    bar.update(n - bar.n)
    bar.close()
    timeouts[-1] = True
    env.close()

    dist = np.linalg.norm(qpos - inner.eval_goal, axis=1)  # D4RL relabels on infos/qpos
    rewards = (np.exp(-dist) if task.dense else (dist <= GOAL_RADIUS)).astype(np.float32)
    frame = env.frame
    obs = np.concatenate([frame.pos_to_d4rl(obs_pm[:, :2]), frame.vec_to_d4rl(obs_pm[:, 2:])], 1)
    ends = np.flatnonzero(timeouts)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    store = TrajectoryStore(
        observations=obs.astype(np.float32),
        actions=frame.vec_to_d4rl(actions).astype(np.float32),
        rewards=rewards, terminals=np.zeros(n, bool), timeouts=timeouts, starts=starts,
        returns=np.add.reduceat(rewards.astype(np.float64), starts),
        metadata={
            "task": task.name,
            "generator": "gac.data.maze_generator (D4RL's maze2d recipe)",
            "seed": cfg.seed,
            "noise": cfg.noise,
            "env_id": task.spec.env_id,
            "obs_layout": "x,y,vx,vy (D4RL frame: x = row, y = column)",
            "reward": f"{'dense' if task.dense else 'sparse'}, fixed evaluation goal",
            "horizon": task.horizon,
            "d4rl_dataset": task.d4rl_dataset,
            "action_low": -1.0,
            "action_high": 1.0,
        },
    )
    if cfg.reference_episodes > 0:
        lo, hi = measure_references(task, cfg.reference_episodes, seed=cfg.seed + 1)
        store.metadata.update(ref_min_score=lo, ref_max_score=hi,
                              ref_episodes=cfg.reference_episodes)
    extra = {"infos/goal": frame.pos_to_d4rl(goals).astype(np.float32),
             "infos/qpos": frame.pos_to_d4rl(qpos).astype(np.float32),
             "infos/qvel": frame.vec_to_d4rl(qvel).astype(np.float32)}
    return store, extra
