"""Task registry: environment factory, horizon, goal, return scale and references per task."""

from __future__ import annotations

from dataclasses import dataclass

from gac.tasks.locomotion import LocomotionEnv, LocomotionTask, locomotion_tasks
from gac.tasks.maze import MAZES, MazeEnv, MazeSpec, WaypointController
from gac.tasks.references import d4rl_reference, normalized_score

__all__ = ["MazeTask", "LocomotionTask", "Task", "TASKS", "get_task", "d4rl_reference",
           "normalized_score", "MazeEnv", "LocomotionEnv"]


@dataclass(frozen=True)
class MazeTask:
    """``pointmaze-{umaze,medium,large}[-dense]``: fixed evaluation goal, D4RL horizons."""

    name: str
    maze: str
    dense: bool = False
    goal_in_obs: bool = True
    default_steps: int = 200_000  # default dataset size (D4RL: 1M / 2M / 4M)
    return_scale: float = 100.0  # LPT's maze2d scale: model units = return / 100
    family: str = "maze"

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

    def make_env(self) -> MazeEnv:
        return MazeEnv(self.spec, dense=self.dense, goal_in_obs=self.goal_in_obs)

    def expert(self, env: MazeEnv) -> WaypointController:
        return WaypointController(env.maze)


Task = MazeTask | LocomotionTask

TASKS: dict[str, Task] = {}
for _maze, _steps in (("umaze", 200_000), ("medium", 400_000), ("large", 600_000)):
    TASKS[f"pointmaze-{_maze}"] = MazeTask(f"pointmaze-{_maze}", _maze, default_steps=_steps)
    TASKS[f"pointmaze-{_maze}-dense"] = MazeTask(f"pointmaze-{_maze}-dense", _maze, dense=True,
                                                 default_steps=_steps)
TASKS.update(locomotion_tasks())


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
