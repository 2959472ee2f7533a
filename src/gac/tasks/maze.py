"""Maze2D-class tasks on Gymnasium-Robotics PointMaze, made like D4RL's maze2d.

Differences from D4RL's ``maze2d-*-v1`` (same point-mass physics otherwise), and what gac does:

- Goal radius: PointMaze counts success within 0.45; D4RL's sparse reward within 0.5. gac
  computes the reward itself with D4RL's 0.5 (``GOAL_RADIUS``).
- Velocity: PointMaze clips the ball's velocity to +-5; D4RL does not (the controller rarely
  reaches that speed, so trajectories match closely).
- Coordinates: PointMaze centres the maze on (0, 0) with x along columns and y pointing up;
  D4RL uses grid indices (x = row, y = column). Cells and goals here are PointMaze coordinates.
- Observations: PointMaze returns a dict; D4RL a flat (x, y, vx, vy). gac flattens to
  (x, y, vx, vy, gx, gy) by default: the data drive to random goals, so a policy needs the goal.
  ``goal_in_obs=False`` gives D4RL's 4-vector.
- Evaluation goal: D4RL fixes the goal at the maze's 'G' cell; so does gac (``goal_cell``),
  at the exact cell centre (PointMaze would add position noise to it).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

GOAL_RADIUS = 0.5  # D4RL maze2d sparse reward radius
MAX_SPEED = 5.0  # PointMaze clips each velocity component to this before every step
P_GAIN, D_GAIN = 10.0, -1.0  # D4RL's waypoint controller gains

_registered = False


def _make_point_maze(env_id: str) -> Any:
    global _registered
    if not _registered:
        # Its import prints a notice about Adroit reward versions, which gac does not use.
        with contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        _registered = True
    # continuing_task: reaching the goal neither terminates nor moves it (D4RL's eval protocol).
    env = gym.make(env_id, continuing_task=True, reset_target=False)
    return env.unwrapped  # skip checker/time-limit wrappers: gac counts steps itself


@dataclass(frozen=True)
class MazeSpec:
    env_id: str  # Gymnasium-Robotics id
    goal_cell: tuple[int, int]  # D4RL's 'G' cell (row, col)
    horizon: int  # D4RL max_episode_steps
    d4rl_name: str
    d4rl_steps: int  # size of D4RL's dataset


MAZES: dict[str, MazeSpec] = {
    "umaze": MazeSpec("PointMaze_UMaze-v3", (1, 1), 300, "maze2d-umaze-v1", 1_000_000),
    "medium": MazeSpec("PointMaze_Medium-v3", (6, 6), 600, "maze2d-medium-v1", 2_000_000),
    "large": MazeSpec("PointMaze_Large-v3", (7, 9), 800, "maze2d-large-v1", 4_000_000),
}


class MazeEnv:
    """A PointMaze with a fixed or settable goal, flat observations and D4RL's rewards.

    ``reset(seed)`` starts the ball at a random open cell (PointMaze's own reset distribution)
    with the goal at ``goal`` (default: the maze's evaluation goal cell centre).
    """

    def __init__(self, spec: MazeSpec, dense: bool = False, goal_in_obs: bool = True):
        self.spec = spec
        self.dense = dense
        self.goal_in_obs = goal_in_obs
        self._env = _make_point_maze(spec.env_id)
        self.maze = self._env.maze
        self.eval_goal = np.asarray(self.maze.cell_rowcol_to_xy(np.array(spec.goal_cell)),
                                    dtype=np.float64)
        self.goal = self.eval_goal.copy()
        self.obs_dim = 6 if goal_in_obs else 4
        self.act_dim = 2
        self.action_low, self.action_high = -1.0, 1.0
        self.data = self._env.point_env.data  # MuJoCo's state: qpos, qvel
        self._model = self._env.point_env.model
        self._frame_skip = self._env.point_env.frame_skip

    # The ball's state lives in MuJoCo's qpos/qvel; reading it directly avoids dict building.
    @property
    def position(self) -> np.ndarray:
        return self.data.qpos[:2].copy()

    @property
    def velocity(self) -> np.ndarray:
        return self.data.qvel[:2].copy()

    def observation(self) -> np.ndarray:
        parts = [self.data.qpos[:2], self.data.qvel[:2]]
        if self.goal_in_obs:
            parts.append(self.goal)
        return np.concatenate(parts).astype(np.float32)

    def set_goal(self, goal: np.ndarray) -> None:
        self.goal = np.asarray(goal, dtype=np.float64).copy()
        self._env.goal = self.goal.copy()
        self._env.update_target_site_pos()

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._env.reset(seed=seed, options={"goal_cell": np.array(self.spec.goal_cell)})
        self.set_goal(self.eval_goal)
        return self.observation()

    def reward(self) -> float:
        dist = float(np.linalg.norm(self.data.qpos[:2] - self.goal))
        if self.dense:
            return float(np.exp(-dist))
        return 1.0 if dist <= GOAL_RADIUS else 0.0

    def advance(self, action: np.ndarray) -> None:
        """One physics step under ``action`` (PointMaze's frame), nothing read back.

        PointMaze's ``PointEnv.step`` made directly on MuJoCo's arrays: the velocity clip, the
        forward pass its ``set_state`` makes, the clipped control, ``frame_skip`` steps and
        the post-constraint pass, in its order, to the same bits (tests/tasks/
        test_maze_tasks.py), without its copies, checks and discarded observation: about 1.6x
        faster per step, and a maze rollout spends half its time here."""
        if np.shape(action) != (2,):  # as PointEnv.step refuses it; a scalar would broadcast
            raise ValueError(f"maze action: expected shape (2,), found {np.shape(action)}")
        d = self.data
        # The clips as ufuncs: np.clip's Python wrappers cost more than the clipping.
        np.minimum(np.maximum(d.qvel, -MAX_SPEED, out=d.qvel), MAX_SPEED, out=d.qvel)
        mujoco.mj_forward(self._model, d)
        np.minimum(np.maximum(action, -1.0), 1.0, out=d.ctrl)
        mujoco.mj_step(self._model, d, nstep=self._frame_skip)
        mujoco.mj_rnePostConstraint(self._model, d)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.advance(action)
        return self.observation(), self.reward(), False, False, {}

    def close(self) -> None:
        self._env.close()

    # The controller works in PointMaze's frame; these let it drive either env class.
    def pm_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, goal) in PointMaze's frame."""
        return self.position, self.velocity, self.goal

    def action_from_pm(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action)


class WaypointController:
    """D4RL's maze2d expert: shortest path over maze cells, PD control to the next waypoint.

    The waypoint is the centre of the next cell on a breadth-first shortest path to the goal's
    cell, or the goal itself once the ball is in the goal's cell.
    """

    def __init__(self, maze: Any, p_gain: float = P_GAIN, d_gain: float = D_GAIN):
        self.maze = maze
        self.p_gain, self.d_gain = p_gain, d_gain
        self.grid = np.array(maze.maze_map, dtype=object) != 1
        self._next: dict[tuple[int, int], np.ndarray] = {}  # goal cell -> next-cell table

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        r, c = self.maze.cell_xy_to_rowcol(np.asarray(xy))
        rows, cols = self.grid.shape
        return int(np.clip(r, 0, rows - 1)), int(np.clip(c, 0, cols - 1))

    def _table(self, goal_cell: tuple[int, int]) -> np.ndarray:
        """For each cell, the neighbouring cell one step closer to ``goal_cell`` (BFS)."""
        if goal_cell not in self._next:
            self._next[goal_cell] = shortest_paths(self.grid, goal_cell)[0]
        return self._next[goal_cell]

    def waypoint(self, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        here, goal_cell = self.cell(pos), self.cell(goal)
        if here == goal_cell:
            return np.asarray(goal, dtype=np.float64)
        nxt = self._table(goal_cell)[here]
        if nxt[0] < 0:  # inside a wall cell (numerically): head for the goal directly
            return np.asarray(goal, dtype=np.float64)
        return np.asarray(self.maze.cell_rowcol_to_xy(nxt), dtype=np.float64)

    def __call__(self, pos: np.ndarray, vel: np.ndarray, goal: np.ndarray) -> np.ndarray:
        wp = self.waypoint(pos, goal)
        return np.clip(self.p_gain * (wp - pos) + self.d_gain * vel, -1.0, 1.0)


def shortest_paths(open_grid: np.ndarray, goal_cell: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Breadth-first search from ``goal_cell`` over the open cells of a (rows, columns) grid
    (True: open), moving between 4-neighbours: for each cell, the neighbour one step closer to
    the goal (rows, columns, 2), and its distance to the goal in cells (rows, columns); -1 in
    both where a cell is a wall or cannot reach the goal."""
    rows, cols = open_grid.shape
    nxt = np.full((rows, cols, 2), -1, dtype=np.int64)
    dist = np.full((rows, cols), -1, dtype=np.int64)
    nxt[goal_cell] = goal_cell
    dist[goal_cell] = 0
    queue = deque([goal_cell])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            n = (r + dr, c + dc)
            if 0 <= n[0] < rows and 0 <= n[1] < cols and open_grid[n] and nxt[n][0] < 0:
                nxt[n] = (r, c)
                dist[n] = dist[r, c] + 1
                queue.append(n)
    return nxt, dist


def open_cells(maze: Any) -> list[tuple[int, int]]:
    grid = np.array(maze.maze_map, dtype=object)
    return [(int(r), int(c)) for r, c in zip(*np.nonzero(grid != 1), strict=True)]


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


class MazeSpecTask:
    """What every maze task derives from its maze (``self.maze``, ``self.dense``)."""

    maze: str
    dense: bool

    @property
    def spec(self) -> MazeSpec:
        return MAZES[self.maze]

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def d4rl_dataset(self) -> str:
        base = self.spec.d4rl_name
        return base.replace("-v1", "-dense-v1") if self.dense else base

    def cache_is_stale(self, path: Path) -> bool:
        return False  # the generator is deterministic code, not a committed artefact


@dataclass(frozen=True)
class MazeTask(MazeSpecTask):
    """``pointmaze-{umaze,medium,large}-goal[-dense]``: the easier, goal-conditioned variant.

    The observation carries the goal (x, y, vx, vy, gx, gy) and the data's rewards are relative
    to the data's own current goal, so a policy can imitate the controller for whatever goal it
    is shown: goal-conditioned imitation. D4RL's maze2d problem is ``gac.tasks.maze2d``.
    """

    name: str
    maze: str
    dense: bool = False
    goal_in_obs: bool = True
    default_steps: int = 200_000  # default dataset size (D4RL: 1M / 2M / 4M)
    return_scale: float = 100.0  # LPT's maze2d scale: model units = return / 100
    family: str = "pointmaze-goal"
    act_dim: int = 2
    split: str = "maze2d"

    @property
    def obs_dim(self) -> int:
        return 6 if self.goal_in_obs else 4

    @property
    def preset_key(self) -> str:
        return f"pointmaze-{self.maze}-goal"

    def make_env(self) -> MazeEnv:
        return MazeEnv(self.spec, dense=self.dense, goal_in_obs=self.goal_in_obs)

    def d4rl_references(self) -> tuple[float, float] | None:
        return None  # another problem than D4RL's: scored with references measured here only

    def adapt_file(self, store: Any, path: Any) -> Any:
        return store
