"""Where gac keeps generated datasets and runs (never inside the git checkout by default)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GAC_CACHE``, else ``$XDG_CACHE_HOME/gac``, else ``~/.cache/gac``."""
    if os.environ.get("GAC_CACHE"):
        return Path(os.environ["GAC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gac"


# Bumped whenever the dataset generators change what a (task, steps, seed) produces, so that a
# cached file from an older generator is never mistaken for the current one.
GENERATOR_VERSION = 2


def dataset_path(task: str, steps: int, seed: int) -> Path:
    return cache_dir() / "datasets" / f"{task}-{steps}-s{seed}-g{GENERATOR_VERSION}.hdf5"
