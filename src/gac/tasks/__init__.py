"""Task registry: every task family behind one ``Task`` interface (``gac.tasks.base``).

- ``maze2d-*``: D4RL's maze2d (4-dim observations, rewards for the fixed evaluation goal).
- ``pointmaze-*-goal``: the easier goal-conditioned variant (the goal in the observation).
- ``hopper-*``, ``halfcheetah-*``, ``walker2d-*``: Gym-MuJoCo locomotion.
"""

from __future__ import annotations

from gac.tasks.base import Env, Task, check_dims
from gac.tasks.locomotion import LocomotionEnv, LocomotionTask, locomotion_tasks
from gac.tasks.maze import MAZES, MazeEnv, MazeSpec, MazeTask, WaypointController
from gac.tasks.maze2d import D4RLFrame, Maze2DEnv, Maze2DTask, maze2d_tasks
from gac.tasks.references import d4rl_reference, normalized_score

__all__ = ["Task", "Env", "TASKS", "ALIASES", "get_task", "check_dims", "MazeTask", "Maze2DTask",
           "LocomotionTask", "d4rl_reference", "normalized_score", "MazeEnv", "Maze2DEnv",
           "D4RLFrame", "LocomotionEnv", "MAZES", "MazeSpec", "WaypointController"]

TASKS: dict[str, Task] = {}
TASKS.update(maze2d_tasks())
for _maze, _steps in (("umaze", 200_000), ("medium", 400_000), ("large", 600_000)):
    TASKS[f"pointmaze-{_maze}-goal"] = MazeTask(f"pointmaze-{_maze}-goal", _maze,
                                                default_steps=_steps)
    TASKS[f"pointmaze-{_maze}-goal-dense"] = MazeTask(f"pointmaze-{_maze}-goal-dense", _maze,
                                                      dense=True, default_steps=_steps)
TASKS.update(locomotion_tasks())

# Names before the D4RL maze2d family existed: the goal-conditioned mazes were pointmaze-*.
# Old checkpoints, configs and cached datasets carry them.
ALIASES: dict[str, str] = {f"pointmaze-{m}{d}": f"pointmaze-{m}-goal{d}"
                           for m in MAZES for d in ("", "-dense")}


def get_task(name: str) -> Task:
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
