"""D4RL's maze2d: ``maze2d-{umaze,medium,large}[-dense]`` on Gymnasium-Robotics PointMaze physics.

This is the problem GAC, LPT, Diffuser and IQL report on. The observation is D4RL's 4-vector
(x, y, vx, vy) with no goal; every step of the data is rewarded for the one fixed evaluation goal
(the maze's 'G' cell), whatever goal the data-collecting controller was driving to. A policy must
find and stitch the pieces of data that pass the evaluation goal, from their returns alone.

Frames. D4RL places cell (row, col) at (x, y) = (row, col), in grid units; PointMaze centres the
maze on (0, 0) with x along columns and y pointing up. With ``R`` rows, ``C`` columns and unit
cells (all three mazes):

    x_d4rl = R/2 - 1/2 - y_pm        y_d4rl = x_pm + C/2 - 1/2
    (vx, vy)_d4rl = (-vy_pm, vx_pm)  and the same rotation for actions (forces)

``D4RLFrame`` applies it in both directions; ``Maze2DEnv`` speaks only D4RL's frame, so gac's own
data, a user's D4RL files and the policies trained on either play in the same frame. Distances
are unchanged by the map, so rewards and radii carry over.

Evaluation as D4RL's ``maze_model.MazeEnv``: the ball starts at a uniformly drawn open cell
(the goal cell included) plus U(-0.1, 0.1) per coordinate, with velocity N(0, 0.1^2); the goal is
the exact centre of the 'G' cell; the sparse reward is 1 within 0.5 of it (dense: exp(-distance)),
for 300 / 600 / 800 steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gac.tasks.maze import MAZES, MazeEnv, MazeSpec, MazeSpecTask, open_cells
from gac.tasks.references import d4rl_reference

START_NOISE = 0.1  # D4RL: qpos = cell + U(-0.1, 0.1)
VEL_NOISE = 0.1  # D4RL: qvel = N(0, 0.1^2)
REFERENCE_EPISODES = 100  # episodes per reference return measured for a D4RL file


class D4RLFrame:
    """The map between PointMaze's frame and D4RL's maze2d frame for one maze (unit cells)."""

    def __init__(self, maze: Any):
        if float(maze.maze_size_scaling) != 1.0:
            raise ValueError(f"D4RL's maze2d frame has unit cells; this maze has scaling "
                             f"{maze.maze_size_scaling}")
        rows, cols = np.array(maze.maze_map, dtype=object).shape
        self.x0 = rows / 2 - 0.5  # x_d4rl = x0 - y_pm
        self.y0 = cols / 2 - 0.5  # y_d4rl = x_pm + y0

    def pos_to_d4rl(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([self.x0 - xy[..., 1], xy[..., 0] + self.y0], axis=-1)

    def pos_from_d4rl(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([xy[..., 1] - self.y0, self.x0 - xy[..., 0]], axis=-1)

    @staticmethod
    def vec_to_d4rl(v: np.ndarray) -> np.ndarray:
        """Velocities and actions (a rotation by +90 degrees)."""
        v = np.asarray(v)
        return np.stack([-v[..., 1], v[..., 0]], axis=-1)

    @staticmethod
    def vec_from_d4rl(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v)
        return np.stack([v[..., 1], -v[..., 0]], axis=-1)

    def obs_to_d4rl(self, pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
        return np.concatenate([self.pos_to_d4rl(pos), self.vec_to_d4rl(vel)], axis=-1)

    def state_to_obs(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """One state's float32 observation: ``obs_to_d4rl`` to the bit, from MuJoCo's qpos and
        qvel, built from four scalars. It runs every environment step, where the array maps'
        temporaries cost about as much as the physics (tests/tasks/test_maze2d.py)."""
        return np.array((self.x0 - qpos[1], qpos[0] + self.y0, -qvel[1], qvel[0]), np.float32)

    @staticmethod
    def action_from_d4rl(a: np.ndarray) -> np.ndarray:
        """One action (2,) in PointMaze's frame: ``vec_from_d4rl`` to the bit, without its
        stacking (it runs every environment step)."""
        return np.array((a[1], -a[0]))


class Maze2DEnv:
    """D4RL's maze2d evaluation env in D4RL's frame, over PointMaze's physics."""

    obs_dim = 4
    act_dim = 2
    action_low, action_high = -1.0, 1.0

    def __init__(self, spec: MazeSpec, dense: bool = False):
        self.spec = spec
        self._maze_env = MazeEnv(spec, dense=dense, goal_in_obs=False)
        self.maze = self._maze_env.maze
        self.frame = D4RLFrame(self.maze)
        self._cells = open_cells(self.maze)
        self._rng = np.random.default_rng()
        self.goal = self.frame.pos_to_d4rl(self._maze_env.eval_goal)  # D4RL frame

    @property
    def position(self) -> np.ndarray:
        """The ball's position in D4RL's frame."""
        return self.frame.pos_to_d4rl(self._maze_env.position)

    def observation(self) -> np.ndarray:
        data = self._maze_env.data
        return self.frame.state_to_obs(data.qpos, data.qvel)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._maze_env.reset(seed=seed)
        cell = self._cells[self._rng.integers(len(self._cells))]
        centre = np.asarray(self.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64)
        qpos = centre + self._rng.uniform(-START_NOISE, START_NOISE, size=2)
        qvel = VEL_NOISE * self._rng.standard_normal(2)
        self._maze_env._env.point_env.set_state(qpos, qvel)
        return self.observation()

    def set_state(self, obs: np.ndarray) -> np.ndarray:
        """Put the ball at an observation (x, y, vx, vy) in D4RL's frame, e.g. a recorded
        segment's first state; returns the observation it then reads."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"set_state: an observation of shape ({self.obs_dim},), got "
                             f"{obs.shape}")
        self._maze_env._env.point_env.set_state(self.frame.pos_from_d4rl(obs[:2]),
                                                self.frame.vec_from_d4rl(obs[2:]))
        return self.observation()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # Physics only: MazeEnv.step's observation (in PointMaze's frame) would be thrown away.
        # advance clips the action to [-1, 1]; the frame's map only swaps and negates, so
        # clipping after it is clipping before it.
        self._maze_env.advance(self.frame.action_from_d4rl(action))
        return self.observation(), self._maze_env.reward(), False, False, {}

    def close(self) -> None:
        self._maze_env.close()

    def pm_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, goal) in PointMaze's frame, for the waypoint controller."""
        return self._maze_env.pm_state()

    def action_from_pm(self, action: np.ndarray) -> np.ndarray:
        return self.frame.vec_to_d4rl(action)


@dataclass(frozen=True)
class Maze2DTask(MazeSpecTask):
    """``maze2d-{umaze,medium,large}[-dense]``: D4RL's maze2d, made and scored as D4RL did."""

    name: str
    maze: str
    dense: bool = False
    return_scale: float = 100.0  # LPT's maze2d scale: model units = return / 100
    family: str = "maze2d"
    obs_dim: int = 4
    act_dim: int = 2
    split: str = "maze2d"

    @property
    def default_steps(self) -> int:
        return self.spec.d4rl_steps  # D4RL's sizes: 1M / 2M / 4M

    @property
    def preset_key(self) -> str:
        return f"maze2d-{self.maze}"

    def make_env(self) -> Maze2DEnv:
        return Maze2DEnv(self.spec, dense=self.dense)

    def d4rl_references(self) -> tuple[float, float]:
        return d4rl_reference(self.d4rl_dataset)

    def adapt_file(self, store: Any, path: Path) -> Any:
        """A D4RL maze2d file: name the task, keep D4RL's references beside gac's measured ones
        (measured here once and cached), and check that its positions lie in this maze."""
        from gac.data.store import DataError
        from gac.tasks.maze_references import measured_references

        meta = store.metadata
        meta.setdefault("task", self.name)
        meta.setdefault("horizon", self.horizon)
        meta.setdefault("d4rl_dataset", self.d4rl_dataset)
        meta.setdefault("obs_layout", "x,y,vx,vy (D4RL frame)")
        if store.obs_dim == 4:
            env = self.make_env()
            grid = np.array(env.maze.maze_map, dtype=object) != 1
            rows, cols = grid.shape
            cells = np.rint(store.observations[:, :2]).astype(np.int64)
            inside = (cells[:, 0] >= 0) & (cells[:, 0] < rows) & (cells[:, 1] >= 0) \
                & (cells[:, 1] < cols)
            ok = inside.copy()
            ok[inside] = grid[cells[inside, 0], cells[inside, 1]]
            env.close()
            if ok.mean() < 0.99:
                raise DataError(f"{path}: only {100 * ok.mean():.1f}% of the positions lie in "
                                f"open cells of {self.name}'s maze; is this really "
                                f"{self.d4rl_dataset} (D4RL frame: x = row, y = column)?")
        if "ref_min_score" not in meta:
            meta["ref_min_score"], meta["ref_max_score"], meta["ref_episodes"] = \
                measured_references(self, REFERENCE_EPISODES)
        return store


def maze2d_tasks() -> dict[str, Maze2DTask]:
    tasks = {}
    for maze in MAZES:
        tasks[f"maze2d-{maze}"] = Maze2DTask(f"maze2d-{maze}", maze)
        tasks[f"maze2d-{maze}-dense"] = Maze2DTask(f"maze2d-{maze}-dense", maze, dense=True)
    return tasks
