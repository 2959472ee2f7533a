"""Named datasets: make one for a task, or find it (a path, a Minari id, or a task's default)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py

from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.maze_generator import MazeDataConfig, generate_maze_dataset
from gac.data.store import DataError, TrajectoryStore
from gac.paths import dataset_path
from gac.tasks import TASKS, LocomotionTask, get_task
from gac.tasks.locomotion import BODIES

MINARI_PREFIX = "minari:"


def make_dataset(task_name: str, steps: int | None = None, seed: int = 0, out: str | Path | None = None,
                 overwrite: bool = False, noise: float = 0.5, reference_episodes: int = 100,
                 progress: bool = True, dwell: int = MazeDataConfig.dwell,
                 replay_dir: str | Path | None = None) -> Path:
    """Generate a task's dataset and write it (default: the cache folder). Returns its path.

    Mazes use ``noise``, ``dwell`` and ``reference_episodes``. Locomotion ignores them (its
    behaviour policies and reference returns come with the committed policies) and uses
    ``replay_dir``: a behaviour training folder whose recorded rollouts make medium-replay exactly.
    """
    task = get_task(task_name)
    steps = task.default_steps if steps is None else steps  # an explicit 0 is an error, not "default"
    if isinstance(task, LocomotionTask):
        return _make_locomotion(task, steps, seed, out, overwrite, progress, replay_dir)
    cfg = MazeDataConfig(steps=steps, seed=seed, noise=noise, dwell=dwell,
                         reference_episodes=reference_episodes)
    cfg.check()
    path = Path(out) if out else dataset_path(task_name, steps, seed)
    if path.exists() and not overwrite:  # before generating: fail in milliseconds, not minutes
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    store, goals = generate_maze_dataset(task, cfg, progress=progress)
    return save_hdf5(store, path, overwrite=overwrite, extra={"infos/goal": goals})


def _make_locomotion(task: LocomotionTask, steps: int, seed: int, out: str | Path | None,
                     overwrite: bool, progress: bool, replay_dir: str | Path | None) -> Path:
    from gac.data.locomotion_generator import LocomotionDataConfig, generate_locomotion_dataset

    if task.source != "gac":
        raise ValueError(f"{task.name} is a D4RL dataset: D4RL's files cannot be made (nor "
                         f"downloaded) here. Train on your own copy (gac train PATH/"
                         f"{d4rl_filename(task)}) or make gac's {task.body}-{task.kind}")
    cfg = LocomotionDataConfig(steps=steps, seed=seed)
    cfg.check()
    path = Path(out) if out else dataset_path(task.name, steps, seed)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    store = generate_locomotion_dataset(task, cfg, replay_dir=replay_dir, progress=progress)
    return save_hdf5(store, path, overwrite=overwrite)


# ----------------------------------------------------------------------------- D4RL files
def d4rl_filename(task: LocomotionTask) -> str:
    """The name D4RL saved a dataset under (``hopper_medium_replay-v2.hdf5``)."""
    return f"{task.body}_{task.kind.replace('-', '_')}-v2.hdf5"


def d4rl_dirs() -> list[Path]:
    """Where D4RL kept its downloads: ``$D4RL_DATASET_DIR``, else ``~/.d4rl/datasets``."""
    return [Path(os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")).expanduser()]


def d4rl_task_of(path: Path) -> LocomotionTask | None:
    """The D4RL task a file's name says it holds (``hopper_medium-v2.hdf5``, ``hopper-medium-v2``)."""
    name = re.sub(r"[_\s]+", "-", path.stem.lower())
    task = TASKS.get(name)
    return task if isinstance(task, LocomotionTask) and task.source == "d4rl" else None


def _tag_d4rl(store: TrajectoryStore, path: Path) -> TrajectoryStore:
    """Name the task and D4RL's reference returns of a D4RL file (its attributes hold neither),
    so that it trains and scores against the v4 env like D4RL's own evaluation."""
    task = d4rl_task_of(path)
    if task is None or "task" in store.metadata:
        return store
    refs = task.d4rl_references()
    store.metadata.setdefault("task", task.name)
    store.metadata.setdefault("env_id", task.env_id)
    store.metadata.setdefault("horizon", task.horizon)
    store.metadata.setdefault("d4rl_dataset", task.d4rl_dataset)
    if refs is not None and "ref_min_score" not in store.metadata:
        store.metadata["ref_min_score"], store.metadata["ref_max_score"] = refs
        store.metadata["ref_source"] = "D4RL (d4rl/infos.py)"
    body = BODIES[task.body]
    if (store.obs_dim, store.act_dim) != (body.obs_dim, body.act_dim):
        raise DataError(f"{path}: observation/action dims {store.obs_dim}/{store.act_dim}, "
                        f"{task.env_id} has {body.obs_dim}/{body.act_dim}; is this really "
                        f"{task.d4rl_dataset}?")
    return store


def _find_d4rl(task: LocomotionTask) -> Path:
    names = (d4rl_filename(task), f"{task.d4rl_dataset}.hdf5")
    for folder in d4rl_dirs():
        for name in names:
            if (folder / name).exists():
                return folder / name
    raise FileNotFoundError(
        f"{task.name}: D4RL's file is not here (looked for {' or '.join(names)} in "
        f"{', '.join(str(d) for d in d4rl_dirs())}; set D4RL_DATASET_DIR or pass the file's "
        f"path). D4RL's files cannot be downloaded here; gac makes its own "
        f"{task.body}-{task.kind} instead")


def _stale(path: Path, task: LocomotionTask) -> bool:
    """A cached locomotion dataset made from other policies than the committed ones."""
    from gac.data.behaviour import policies_fingerprint

    current = policies_fingerprint(task.body)
    if not current:  # no policies here (an installed package): keep what was made
        return False
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("policies_sha") != current
    except OSError:
        return True


def resolve_dataset(name_or_path: str, seed: int = 0, progress: bool = True) -> TrajectoryStore:
    """An HDF5 path, ``minari:DATASET_ID`` (a local Minari dataset), or a task name: its default
    dataset, generated once and cached. D4RL locomotion files (a path, or a name such as
    ``hopper-medium-v2`` found in D4RL's download folder) get D4RL's task and references."""
    if name_or_path.startswith(MINARI_PREFIX):
        from gac.data.minari_io import load_minari

        return load_minari(name_or_path[len(MINARI_PREFIX):])
    path = Path(name_or_path)
    if path.suffix in (".hdf5", ".h5") or path.exists():
        return _tag_d4rl(load_hdf5(path), path)
    task = get_task(name_or_path)
    if isinstance(task, LocomotionTask) and task.source == "d4rl":
        found = _find_d4rl(task)
        return _tag_d4rl(load_hdf5(found, split="locomotion"), found)
    path = dataset_path(task.name, task.default_steps, seed)
    regenerate = path.exists() and isinstance(task, LocomotionTask) and _stale(path, task)
    if not path.exists() or regenerate:
        make_dataset(task.name, seed=seed, out=path, progress=progress, overwrite=regenerate)
    return load_hdf5(path)
