"""What a task family provides: the one interface the rest of gac sees.

A new task family is one module under ``gac/tasks/`` with a class satisfying ``Task``, one line
in ``gac/tasks/__init__.py`` that registers its names, and its dataset generator registered
under its ``family`` in ``gac.data.generators`` (the data layer imports tasks, never the other
way round). Nothing else switches on the family.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # type hints only: tasks do not import the data layer at run time
    from gac.data.store import TrajectoryStore


@runtime_checkable
class Env(Protocol):
    """gac's environment interface: flat float32 observations, a box of actions, no auto-reset."""

    obs_dim: int
    act_dim: int
    action_low: float
    action_high: float

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]: ...

    def close(self) -> None: ...


@runtime_checkable
class Task(Protocol):
    """A named evaluation problem and the datasets made for it."""

    name: str
    family: str  # "maze2d", "pointmaze-goal", "locomotion": for display and presets only
    return_scale: float  # raw return / scale = the model's return units

    @property
    def horizon(self) -> int: ...

    @property
    def obs_dim(self) -> int: ...

    @property
    def act_dim(self) -> int: ...

    @property
    def default_steps(self) -> int: ...

    @property
    def d4rl_dataset(self) -> str: ...

    @property
    def preset_key(self) -> str:
        """The key of this task's entry in ``gac.config.PRESETS``."""
        ...

    @property
    def split(self) -> str:
        """How a D4RL-layout stream of this task cuts into episodes (``gac.data.hdf5``)."""
        ...

    def make_env(self) -> Env: ...

    def d4rl_references(self) -> tuple[float, float] | None:
        """D4RL's published (R_random, R_expert) for this task, where it has them."""
        ...

    def adapt_file(self, store: TrajectoryStore, path: Path) -> TrajectoryStore:
        """Tag a D4RL file of this task (task, horizon, references) and check its shapes."""
        ...

    def cache_is_stale(self, path: Path) -> bool:
        """A cached dataset made from other inputs than this checkout's (then: regenerate)."""
        ...


def check_dims(store: TrajectoryStore, task: Task, where: str) -> None:
    """Fail before any training when a dataset does not fit the task's environment."""
    from gac.data.store import DataError

    for field_, found, expected in (("observations", store.obs_dim, task.obs_dim),
                                    ("actions", store.act_dim, task.act_dim)):
        if found != expected:
            raise DataError(f"{where}: field '{field_}' has dimension {found}, but task "
                            f"{task.name}'s environment expects {expected}; pass the task this "
                            f"dataset was made for (--task)")
