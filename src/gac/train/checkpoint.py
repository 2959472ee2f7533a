"""Checkpoints: written atomically, read safely, validated on load with errors that say what is
wrong."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gac
from gac.atomic import atomic_write

FORMAT = "gac-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (corrupt, other task, other version, bad config)."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a run killed while saving leaves the previous
    checkpoint intact."""
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save({"format": FORMAT, "gac_version": gac.__version__, **state}, tmp)
    return path


def _numpy_globals() -> list[Any]:
    """What a checkpoint may hold besides tensors and plain Python values: numpy arrays (episode
    returns, online episodes, dataset attributes) and the numpy RNG's state."""
    core = getattr(np, "_core", None) or np.core
    dtypes = [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64,
                                          np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                                          np.float32, np.float64)]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Read a checkpoint without running any code from it (``weights_only``: tensors, numpy
    arrays and plain values only)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if unsafe:
            raise CheckpointError(f"{path}: holds a Python object ({unsafe.group(1)}) besides "
                                  f"tensors, arrays and plain values; gac does not load such "
                                  f"files, since unpickling them could run any code") from None
        reason = "unreadable data" if isinstance(exc, pickle.UnpicklingError) else exc
        raise CheckpointError(f"{path}: corrupted or not a gac checkpoint ({reason})") from exc
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


def check_finite_weights(weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights with NaN or inf values (a diverged run's), naming the tensors."""
    bad = [k for k, v in weights.items()
           if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: the model weights have NaN/inf values in {len(bad)} "
                              f"tensor(s) ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); "
                              f"the run that wrote them diverged")
