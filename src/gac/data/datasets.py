"""Named datasets: make one for a task, or find it (a path, a Minari id, or a task's default)."""

from __future__ import annotations

from pathlib import Path

from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.maze_generator import MazeDataConfig, generate_maze_dataset
from gac.data.store import TrajectoryStore
from gac.paths import dataset_path
from gac.tasks import get_task

MINARI_PREFIX = "minari:"


def make_dataset(task_name: str, steps: int | None = None, seed: int = 0, out: str | Path | None = None,
                 overwrite: bool = False, noise: float = 0.5, reference_episodes: int = 100,
                 progress: bool = True, dwell: int = MazeDataConfig.dwell) -> Path:
    """Generate a task's dataset and write it (default: the cache folder). Returns its path."""
    task = get_task(task_name)
    steps = task.default_steps if steps is None else steps  # an explicit 0 is an error, not "default"
    cfg = MazeDataConfig(steps=steps, seed=seed, noise=noise, dwell=dwell,
                         reference_episodes=reference_episodes)
    cfg.check()
    path = Path(out) if out else dataset_path(task_name, steps, seed)
    if path.exists() and not overwrite:  # before generating: fail in milliseconds, not minutes
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    store, goals = generate_maze_dataset(task, cfg, progress=progress)
    return save_hdf5(store, path, overwrite=overwrite, extra={"infos/goal": goals})


def resolve_dataset(name_or_path: str, seed: int = 0, progress: bool = True) -> TrajectoryStore:
    """An HDF5 path, ``minari:DATASET_ID`` (a local Minari dataset), or a task name: its default
    dataset, generated once and cached."""
    if name_or_path.startswith(MINARI_PREFIX):
        from gac.data.minari_io import load_minari

        return load_minari(name_or_path[len(MINARI_PREFIX):])
    path = Path(name_or_path)
    if path.suffix in (".hdf5", ".h5") or path.exists():
        return load_hdf5(path)
    task = get_task(name_or_path)
    path = dataset_path(task.name, task.default_steps, seed)
    if not path.exists():
        make_dataset(task.name, seed=seed, out=path, progress=progress)
    return load_hdf5(path)
