"""Named datasets: make one for a task, or find it (a path, a Minari id, or a task's default)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from gac.data.generators import generate
from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.store import TrajectoryStore
from gac.paths import dataset_path
from gac.tasks import ALIASES, TASKS, Task, get_task

MINARI_PREFIX = "minari:"


def make_dataset(task_name: str, steps: int | None = None, seed: int = 0, out: str | Path | None = None,
                 overwrite: bool = False, progress: bool = True, **options: Any) -> Path:
    """Generate a task's dataset and write it (default: the cache folder). Returns its path.

    ``options`` go to the task's generator: mazes take ``noise``, ``dwell`` (the goal-conditioned
    variant only) and ``reference_episodes``; locomotion takes ``replay_dir``, a behaviour
    training folder whose recorded rollouts make medium-replay exactly.
    """
    task = get_task(task_name)
    steps = task.default_steps if steps is None else steps  # an explicit 0 is an error, not "default"
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    path = Path(out) if out else dataset_path(task.name, steps, seed)
    if path.exists() and not overwrite:  # before generating: fail in milliseconds, not minutes
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    store, extra = generate(task, steps, seed, progress=progress, **options)
    return save_hdf5(store, path, overwrite=overwrite, extra=extra)


# ----------------------------------------------------------------------------- D4RL files
def d4rl_dirs() -> list[Path]:
    """Where D4RL kept its downloads: ``$D4RL_DATASET_DIR``, else ``~/.d4rl/datasets``."""
    return [Path(os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")).expanduser()]


def d4rl_task_of(path: Path) -> Task | None:
    """The task a D4RL file's name says it holds: ``hopper_medium-v2.hdf5``, ``hopper-medium-v2``,
    ``maze2d-umaze-v1.hdf5`` (maze2d), ``maze2d-large-dense-v1``."""
    name = re.sub(r"[_\s]+", "-", path.stem.lower())
    task = TASKS.get(name)
    if task is not None and getattr(task, "source", None) == "d4rl":
        return task
    maze = re.fullmatch(r"(maze2d-(?:umaze|medium|large)(?:-dense)?)(?:-v\d+)?", name)
    return TASKS[maze.group(1)] if maze else None


def _find_d4rl(task: Any) -> Path:
    names = (task.d4rl_filename, f"{task.d4rl_dataset}.hdf5")
    for folder in d4rl_dirs():
        for name in names:
            if (folder / name).exists():
                return folder / name
    raise FileNotFoundError(
        f"{task.name}: D4RL's file is not here (looked for {' or '.join(names)} in "
        f"{', '.join(str(d) for d in d4rl_dirs())}; set D4RL_DATASET_DIR or pass the file's "
        f"path). D4RL's files cannot be downloaded here; gac makes its own "
        f"{task.body}-{task.kind} instead")


def load_file(path: Path, task: str | None = None) -> TrajectoryStore:
    """An HDF5 file, split into episodes and tagged as its task says. The task comes from
    ``task``, else the file's metadata, else its name (D4RL's file names)."""
    from gac.data.hdf5 import peek

    named, has_starts = peek(path)
    named = task or named
    found = get_task(named) if named else d4rl_task_of(path)
    # gac's files store their episodes; a D4RL stream is cut the way its task's data need.
    split = "gac" if has_starts or found is None else found.split
    store = load_hdf5(path, split="auto" if found is None else split)  # type: ignore[arg-type]
    return store if found is None else found.adapt_file(store, path)


def resolve_dataset(name_or_path: str, seed: int = 0, progress: bool = True,
                    task: str | None = None) -> TrajectoryStore:
    """An HDF5 path, ``minari:DATASET_ID`` (a local Minari dataset), or a task name: its default
    dataset, generated once and cached. D4RL files (a path, or a locomotion name such as
    ``hopper-medium-v2`` found in D4RL's download folder) get their task and references."""
    if name_or_path.startswith(MINARI_PREFIX):
        from gac.data.minari_io import load_minari

        return load_minari(name_or_path[len(MINARI_PREFIX):])
    path = Path(name_or_path)
    if path.suffix in (".hdf5", ".h5") or path.exists():
        return load_file(path, task)
    found = get_task(name_or_path)
    if getattr(found, "source", "gac") == "d4rl":
        return found.adapt_file(load_hdf5(_find_d4rl(found), split=found.split), path)
    path = dataset_path(found.name, found.default_steps, seed)
    legacy = {v: k for k, v in ALIASES.items()}.get(found.name)  # cached under the old name
    if not path.exists() and legacy and dataset_path(legacy, found.default_steps, seed).exists():
        path = dataset_path(legacy, found.default_steps, seed)
    regenerate = path.exists() and found.cache_is_stale(path)
    if not path.exists() or regenerate:
        make_cached(found.name, seed, path, progress, overwrite=regenerate)
    return load_hdf5(path)


def make_cached(task: str, seed: int, path: Path, progress: bool, steps: int | None = None,
                overwrite: bool = False, **options: Any) -> Path:
    """``make_dataset`` into the cache, where another process may be making the same file: a
    task and seed give the same data, and files are written atomically, so a file that
    appeared meanwhile is complete and is kept."""
    try:
        return make_dataset(task, steps=steps, seed=seed, out=path, progress=progress,
                            overwrite=overwrite, **options)
    except FileExistsError:
        if overwrite or not path.exists():
            raise
        return path
