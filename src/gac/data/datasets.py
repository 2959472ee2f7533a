"""Named datasets: make one for a task, or find it (a path, or a task's cached default)."""

from __future__ import annotations

from pathlib import Path

from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.maze_generator import MazeDataConfig, generate_maze_dataset
from gac.data.store import TrajectoryStore
from gac.paths import dataset_path
from gac.tasks import get_task


def make_dataset(task_name: str, steps: int | None = None, seed: int = 0, out: str | Path | None = None,
                 overwrite: bool = False, noise: float = 0.5, reference_episodes: int = 100,
                 progress: bool = True) -> Path:
    """Generate a task's dataset and write it (default: the cache folder). Returns its path."""
    task = get_task(task_name)
    steps = steps or task.default_steps
    path = Path(out) if out else dataset_path(task_name, steps, seed)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    cfg = MazeDataConfig(steps=steps, seed=seed, noise=noise,
                         reference_episodes=reference_episodes)
    store, goals = generate_maze_dataset(task, cfg, progress=progress)
    return save_hdf5(store, path, overwrite=overwrite, extra={"infos/goal": goals})


def resolve_dataset(name_or_path: str, seed: int = 0, progress: bool = True) -> TrajectoryStore:
    """A path to an HDF5 file, or a task name: its default dataset, generated once and cached."""
    path = Path(name_or_path)
    if path.suffix in (".hdf5", ".h5") or path.exists():
        return load_hdf5(path)
    task = get_task(name_or_path)
    path = dataset_path(task.name, task.default_steps, seed)
    if not path.exists():
        make_dataset(task.name, seed=seed, out=path, progress=progress)
    return load_hdf5(path)
