"""Checkpoints: written atomically, validated on load with errors that say what is wrong."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

import gac

FORMAT = "gac-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (corrupt, other task, other version, bad config)."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename: a run killed while
    saving leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, "gac_version": gac.__version__, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"{path}: corrupted or not a gac checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a gac checkpoint (format {found!r}, expected {FORMAT!r})")
    major = str(state.get("gac_version", "0")).split(".")[:2]
    if major != gac.__version__.split(".")[:2]:
        raise CheckpointError(f"{path}: written by gac {state.get('gac_version')}, this is gac "
                              f"{gac.__version__}; checkpoints are not compatible across versions")
    if task is not None and state.get("config", {}).get("task") != task:
        raise CheckpointError(f"{path}: checkpoint is for task {state['config'].get('task')!r}, "
                              f"not {task!r}")
    return state
