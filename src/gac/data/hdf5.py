"""HDF5 in the D4RL layout: gac's own datasets, and real D4RL files a user already has.

Layout: flat per-step datasets ``observations``, ``actions``, ``rewards``, ``terminals``,
``timeouts`` (plus optional ``infos/*``), metadata as root attributes. gac adds
``episode_returns`` and ``episode_starts`` so that episodes known by return only round-trip.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from gac.data.store import DataError, TrajectoryStore

REQUIRED = ("observations", "actions", "terminals", "timeouts")
Split = Literal["auto", "locomotion", "maze2d", "gac"]


def save_hdf5(store: TrajectoryStore, path: str | Path, overwrite: bool = False,
              extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``store`` atomically (temp file + rename); refuses to replace a file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            opts: dict[str, Any] = {"compression": "gzip", "compression_opts": 4}
            f.create_dataset("observations", data=store.observations, **opts)
            f.create_dataset("actions", data=store.actions, **opts)
            if store.rewards is not None:
                f.create_dataset("rewards", data=store.rewards, **opts)
            f.create_dataset("terminals", data=store.terminals)
            f.create_dataset("timeouts", data=store.timeouts)
            f.create_dataset("episode_starts", data=store.starts)
            f.create_dataset("episode_returns", data=store.returns)
            for key, value in (extra or {}).items():
                f.create_dataset(key, data=value, **opts)
            for key, value in store.metadata.items():
                f.attrs[key] = _attr(value)
            f.attrs["format"] = "gac-d4rl-v1"
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_hdf5(path: str | Path, split: Split = "auto", min_episode_length: int = 1,
              action_low: float | np.ndarray | None = None,
              action_high: float | np.ndarray | None = None) -> TrajectoryStore:
    """Read a gac or D4RL HDF5 file into a store, validating every field.

    ``split`` says how the flat stream becomes episodes: ``gac`` uses the stored episode starts;
    ``locomotion`` cuts after ``terminals`` or ``timeouts``; ``maze2d`` cuts after ``timeouts``
    (goal changes) and wherever the next observation does not follow from this one; ``auto``
    picks ``gac`` for gac files, ``maze2d`` when the file's name or env says maze2d, else
    ``locomotion``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file (or truncated: the HDF5 signature is missing)")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in REQUIRED if k not in f]
            if "rewards" not in f and "episode_returns" not in f:
                missing.append("rewards")
            if missing:
                raise DataError(f"{path}: missing required field(s) {missing}; "
                                f"found {sorted(f.keys())}")
            data = {k: f[k][()] for k in (*REQUIRED, "rewards", "next_observations",
                                            "episode_starts", "episode_returns") if k in f}
            metadata = {k: _unattr(v) for k, v in f.attrs.items()}
    except DataError:
        raise
    except (OSError, KeyError) as exc:  # truncated or corrupt files fail inside h5py
        raise DataError(f"{path}: cannot be read as HDF5 ({exc}); the file may be truncated") from exc
    _validate(path, data, action_low, action_high)

    if split == "auto":
        if "episode_starts" in data:
            split = "gac"
        elif "maze2d" in path.name.lower() or "maze2d" in str(metadata.get("env", "")).lower():
            split = "maze2d"
        else:
            split = "locomotion"
    n = len(data["actions"])
    if split == "gac":
        if "episode_starts" not in data:
            raise DataError(f"{path}: split='gac' needs the field 'episode_starts'")
        starts = data["episode_starts"].astype(np.int64)
        if len(starts) == 0 or starts[0] != 0 or (np.diff(starts) <= 0).any() or starts[-1] >= n:
            raise DataError(f"{path}: field 'episode_starts' is not an increasing list of step "
                            f"indices starting at 0 and below {n}")
    else:
        starts = _split(data, split)

    lengths = np.diff(np.append(starts, n))
    short = np.flatnonzero(lengths < min_episode_length)
    if len(short):
        raise DataError(
            f"{path}: {len(short)} episode(s) shorter than the required {min_episode_length} "
            f"steps (first: episode {short[0]} with {lengths[short[0]]} steps); "
            f"lower min_episode_length or filter the file")

    rewards = data.get("rewards")
    if "episode_returns" in data:
        returns = data["episode_returns"].astype(np.float64)
        if len(returns) != len(starts):
            raise DataError(f"{path}: field 'episode_returns' has {len(returns)} entries for "
                            f"{len(starts)} episodes")
    else:
        returns = np.add.reduceat(rewards.astype(np.float64), starts)
    metadata.setdefault("source", str(path))
    return TrajectoryStore(
        observations=data["observations"].astype(np.float32),
        actions=data["actions"].astype(np.float32),
        rewards=None if rewards is None else rewards.astype(np.float32),
        terminals=data["terminals"].astype(bool),
        timeouts=data["timeouts"].astype(bool),
        starts=starts,
        returns=returns,
        metadata=metadata,
    )


def _validate(path: Path, data: dict[str, np.ndarray], low: Any, high: Any) -> None:
    n = len(data["observations"])
    if n == 0:
        raise DataError(f"{path}: empty dataset (field 'observations' has 0 steps)")
    if data["observations"].ndim != 2:
        raise DataError(f"{path}: field 'observations' must be 2-D (steps, obs_dim), "
                        f"got shape {data['observations'].shape}")
    if data["actions"].ndim != 2:
        raise DataError(f"{path}: field 'actions' must be 2-D (steps, act_dim), "
                        f"got shape {data['actions'].shape}")
    for key in ("actions", "rewards", "terminals", "timeouts", "next_observations"):
        if key in data and len(data[key]) != n:
            raise DataError(f"{path}: length mismatch: field '{key}' has {len(data[key])} "
                            f"steps, 'observations' has {n}")
    for key in ("observations", "actions", "rewards", "next_observations", "episode_returns"):
        if key not in data:
            continue
        values = data[key]
        bad = ~np.isfinite(values)
        if key == "rewards" and "episode_returns" in data:
            bad = np.isinf(values)  # NaN marks steps of episodes known by return only
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{path}: field '{key}' has {int(bad.sum())} NaN/inf value(s) "
                            f"(first at step {row})")
    if low is not None or high is not None:
        acts = data["actions"]
        lo = -np.inf if low is None else np.asarray(low)
        hi = np.inf if high is None else np.asarray(high)
        outside = (acts < lo - 1e-6) | (acts > hi + 1e-6)
        if outside.any():
            row = int(np.argwhere(outside)[0][0])
            raise DataError(
                f"{path}: field 'actions' has {int(outside.any(1).sum())} step(s) outside the "
                f"action space [{low}, {high}] (first at step {row}: {acts[row]})")


def _split(data: dict[str, np.ndarray], split: str) -> np.ndarray:
    n = len(data["actions"])
    ends = data["timeouts"].astype(bool).copy()
    if split == "locomotion":
        ends |= data["terminals"].astype(bool)
    elif split == "maze2d":
        obs = data["observations"]
        if "next_observations" in data:
            jump = np.any(data["next_observations"][:-1] != obs[1:], axis=1)
        else:
            # D4RL's maze2d generator does not advance the state after a goal change, so the
            # next row repeats this one exactly; a moving point mass never does that.
            moving = np.any(obs[:-1, 2:4] != 0, axis=1) if obs.shape[1] >= 4 else True
            jump = np.all(obs[1:] == obs[:-1], axis=1) & moving
        ends[:-1] |= jump
    else:
        raise DataError(f"unknown split {split!r}: use auto, locomotion, maze2d or gac")
    # An episode starts after every cut except one at the very last step.
    return np.concatenate([[0], np.flatnonzero(ends[: n - 1]) + 1]).astype(np.int64)


def _attr(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return "json:" + json.dumps(value)
    if value is None:
        return "none:"
    return value


def _unattr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if value.startswith("json:"):
            return json.loads(value[5:])
        if value == "none:":
            return None
    if isinstance(value, np.generic):
        return value.item()
    return value
