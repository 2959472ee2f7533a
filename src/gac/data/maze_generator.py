"""Maze2D-class datasets made the way D4RL made maze2d.

A waypoint controller drives a point mass to random goal cells, one after another, without ever
resetting the simulation; Gaussian noise is added to its actions. The stream is stored in the D4RL
layout: ``timeouts`` mark goal changes (segment ends), the reward is D4RL's sparse (or dense)
reward relative to the current goal, and ``infos/goal`` holds that goal.

Unlike D4RL's script, the state is advanced after a goal change too, so every row's observation
follows from the previous row (no repeated rows; gac stores the segment starts explicitly).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from gac.data.store import TrajectoryStore
from gac.tasks import MazeTask
from gac.tasks.maze import MazeEnv, WaypointController, open_cells

Policy = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


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


class FastWaypointPolicy:
    """``WaypointController``'s decisions computed on Python floats.

    Per-step numpy calls on 2-vectors cost more than the physics step; this keeps the controller's
    exact arithmetic but looks the waypoint up in a per-goal-cell table built from the controller's
    own shortest-path table (a test checks that the two agree).
    """

    def __init__(self, controller: WaypointController):
        self.controller = controller
        maze = controller.maze
        self.rows, self.cols = controller.grid.shape
        self.scale = float(maze.maze_size_scaling)
        self.x_centre, self.y_centre = float(maze.x_map_center), float(maze.y_map_center)
        self.p_gain, self.d_gain = float(controller.p_gain), float(controller.d_gain)
        self._tables: dict[tuple[int, int], list[list[tuple[float, float] | None]]] = {}

    def cell(self, x: float, y: float) -> tuple[int, int]:
        # Same formula as Maze.cell_xy_to_rowcol, clipped to the grid like WaypointController.cell.
        r = math.floor((self.y_centre - y) / self.scale)
        c = math.floor((x + self.x_centre) / self.scale)
        return min(max(r, 0), self.rows - 1), min(max(c, 0), self.cols - 1)

    def table(self, goal_cell: tuple[int, int]) -> list[list[tuple[float, float] | None]]:
        """Waypoint per cell for any goal in ``goal_cell``; None where it is the goal itself."""
        if goal_cell not in self._tables:
            # Mirrors WaypointController.waypoint: the goal inside its own cell (or where no path
            # exists), else the centre of the next cell on the shortest path.
            nxt = self.controller._table(goal_cell)
            to_xy = self.controller.maze.cell_rowcol_to_xy
            self._tables[goal_cell] = [
                [None if (r, c) == goal_cell or nxt[r, c, 0] < 0
                 else tuple(float(v) for v in to_xy(nxt[r, c])) for c in range(self.cols)]
                for r in range(self.rows)]
        return self._tables[goal_cell]

    def act(self, x: float, y: float, vx: float, vy: float, gx: float, gy: float,
            table: list[list[tuple[float, float] | None]] | None = None) -> tuple[float, float]:
        """The controller's action; pass the goal cell's ``table`` to skip looking it up."""
        if table is None:
            table = self.table(self.cell(gx, gy))
        r, c = self.cell(x, y)
        wp = table[r][c]
        wx, wy = (gx, gy) if wp is None else wp
        ax = min(max(self.p_gain * (wx - x) + self.d_gain * vx, -1.0), 1.0)
        ay = min(max(self.p_gain * (wy - y) + self.d_gain * vy, -1.0), 1.0)
        return ax, ay

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


def rollout_policy(env: MazeEnv, policy: Policy, horizon: int, seed: int) -> float:
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

    def random_policy(pos: Any, vel: Any, goal: Any) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=2)

    r_random = np.mean([rollout_policy(env, random_policy, task.horizon, seed + 2 * k)
                        for k in range(episodes)])
    r_expert = np.mean([rollout_policy(env, controller, task.horizon, seed + 2 * k + 1)
                        for k in range(episodes)])
    env.close()
    return float(r_random), float(r_expert)


def measure_behaviour(task: MazeTask, episodes: int, noise: float, seed: int = 2) -> float:
    """Mean return on the evaluation task of the policy that collected the data: the waypoint
    controller with the same action noise (the maze analogue of a dataset's average return)."""
    env = task.make_env()
    controller = WaypointController(env.maze)
    rng = np.random.default_rng(seed)

    def noisy(pos: Any, vel: Any, goal: Any) -> np.ndarray:
        return np.clip(controller(pos, vel, goal) + noise * rng.standard_normal(2), -1.0, 1.0)

    mean = np.mean([rollout_policy(env, noisy, task.horizon, seed + k) for k in range(episodes)])
    env.close()
    return float(mean)
