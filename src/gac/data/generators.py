"""Dataset generators, one per task family (``Task.family``): how ``gac data make`` makes a
task's data. A generator returns the store and extra per-step fields (``infos/*``) to write with
it; ``options`` are the generator's own (``gac data make --help``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gac.data.store import TrajectoryStore
from gac.tasks import Task

Generated = tuple[TrajectoryStore, dict[str, np.ndarray]]
Generator = Callable[..., Generated]  # (task, steps, seed, progress, **options) -> Generated


def maze2d(task: Any, steps: int, seed: int, progress: bool = True, **options: Any) -> Generated:
    """D4RL's maze2d recipe; options ``noise``, ``reference_episodes``."""
    from gac.data.maze_generator import MazeDataConfig, generate_maze2d_dataset

    if options.pop("dwell", 0) != 0:
        raise ValueError(f"{task.name} follows D4RL's recipe, which never dwells at a goal; "
                         f"dwell is an option of the pointmaze-*-goal tasks")
    options.pop("replay_dir", None)
    return generate_maze2d_dataset(task, MazeDataConfig(steps=steps, seed=seed, dwell=0, **options),
                                   progress=progress)


def goal_maze(task: Any, steps: int, seed: int, progress: bool = True, **options: Any) -> Generated:
    """The goal-conditioned mazes; options ``noise``, ``dwell``, ``reference_episodes``."""
    from gac.data.maze_generator import MazeDataConfig, generate_maze_dataset

    options.pop("replay_dir", None)
    store, goals = generate_maze_dataset(task, MazeDataConfig(steps=steps, seed=seed, **options),
                                         progress=progress)
    return store, {"infos/goal": goals}


def locomotion(task: Any, steps: int, seed: int, progress: bool = True,
               replay_dir: str | Path | None = None, **options: Any) -> Generated:
    """Rollouts of the committed behaviour policies (``replay_dir``: a recorded PPO training
    buffer for medium-replay). Maze options such as ``noise`` do not apply."""
    from gac.data.locomotion_generator import LocomotionDataConfig, generate_locomotion_dataset

    if task.source != "gac":
        raise ValueError(f"{task.name} is a D4RL dataset: D4RL's files cannot be made (nor "
                         f"downloaded) here. Train on your own copy (gac train PATH/"
                         f"{task.d4rl_filename}) or make gac's {task.body}-{task.kind}")
    cfg = LocomotionDataConfig(steps=steps, seed=seed)
    cfg.check()
    return generate_locomotion_dataset(task, cfg, replay_dir=replay_dir, progress=progress), {}


GENERATORS: dict[str, Generator] = {"maze2d": maze2d, "pointmaze-goal": goal_maze,
                                    "locomotion": locomotion}


def generate(task: Task, steps: int, seed: int, progress: bool = True, **options: Any) -> Generated:
    if task.family not in GENERATORS:
        raise ValueError(f"{task.name}: no dataset generator for task family {task.family!r}; "
                         f"known: {', '.join(GENERATORS)}")
    return GENERATORS[task.family](task, steps, seed, progress, **options)
