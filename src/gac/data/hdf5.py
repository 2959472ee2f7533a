"""HDF5 in the D4RL layout: gac's own datasets, and real D4RL files a user already has.

Layout: flat per-step datasets ``observations``, ``actions``, ``rewards``, ``terminals``,
``timeouts`` (plus optional ``infos/*``), metadata as root attributes. gac adds
``episode_returns`` and ``episode_starts`` so that episodes known by return only round-trip.
D4RL files may also hold ``next_observations``, ``infos/*`` and ``metadata/*``; only
``next_observations`` is read (to find episode cuts), the groups are ignored.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from gac.atomic import atomic_write
from gac.data.store import DataError, DataWarning, TrajectoryStore

REQUIRED = ("observations", "actions", "terminals", "timeouts")
OPTIONAL = ("rewards", "next_observations", "episode_starts", "episode_returns")
PER_STEP_1D = ("rewards", "terminals", "timeouts")
Split = Literal["auto", "locomotion", "maze2d", "gac"]
SPLITS = ("auto", "locomotion", "maze2d", "gac")

RUNTIME_KEYS = ("source",)  # where a store was read from: set on load, never written


def save_hdf5(store: TrajectoryStore, path: str | Path, overwrite: bool = False,
              extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``store`` atomically (temp file + rename); refuses to replace a file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if store.num_steps == 0 or store.num_episodes == 0:
        raise DataError(f"{path}: refusing to write an empty dataset")
    if len(store.returns) != store.num_episodes:
        raise DataError(f"{path}: store has {len(store.returns)} returns for "
                        f"{store.num_episodes} episodes")
    with atomic_write(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
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
            if key not in RUNTIME_KEYS:
                f.attrs[key] = _attr(value)
        f.attrs["format"] = "gac-d4rl-v1"
    return path


def load_hdf5(path: str | Path, split: Split = "auto", min_episode_length: int = 1,
              action_low: float | np.ndarray | None = None,
              action_high: float | np.ndarray | None = None) -> TrajectoryStore:
    """Read a gac or D4RL HDF5 file into a store, validating every field.

    ``split`` says how the flat stream becomes episodes: ``gac`` uses the stored episode starts;
    ``locomotion`` cuts after ``terminals`` or ``timeouts``; ``maze2d`` cuts after those and
    wherever the next observation does not follow from this one; ``auto`` picks ``gac`` for gac
    files, ``maze2d`` when the file's name or env says maze2d, else ``locomotion``.

    Actions are checked against ``[action_low, action_high]`` when given, else against the
    file's ``action_low``/``action_high`` attributes when it has them.
    """
    path = Path(path)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
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
            data = {}
            for key in (*REQUIRED, *OPTIONAL):
                if key not in f:
                    continue
                if not isinstance(f[key], h5py.Dataset):
                    raise DataError(f"{path}: field '{key}' is a group, not a dataset")
                data[key] = f[key][()]
            metadata = {k: _read_attr(path, k, v) for k, v in f.attrs.items()}
    except DataError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        # Truncated or corrupt files fail inside h5py, at open or when a chunk is read.
        raise DataError(f"{path}: cannot be read as HDF5 ({exc}); the file may be truncated "
                        f"or corrupt") from exc
    if action_low is None and action_high is None:
        action_low, action_high = metadata.get("action_low"), metadata.get("action_high")
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
        starts = np.asarray(data["episode_starts"]).astype(np.int64).ravel()
        if len(starts) == 0 or starts[0] != 0 or (np.diff(starts) <= 0).any() or starts[-1] >= n:
            raise DataError(f"{path}: field 'episode_starts' is not an increasing list of step "
                            f"indices starting at 0 and below {n}")
    else:
        starts = _split(data, split)
        _check_episode_ends(path, data, starts)

    lengths = np.diff(np.append(starts, n))
    short = np.flatnonzero(lengths < min_episode_length)
    if len(short):
        raise DataError(
            f"{path}: {len(short)} episode(s) shorter than the required {min_episode_length} "
            f"steps (first: episode {short[0]} with {lengths[short[0]]} steps); "
            f"lower min_episode_length or filter the file")

    rewards = data.get("rewards")
    if split == "gac" and "episode_returns" in data:
        returns = np.asarray(data["episode_returns"], dtype=np.float64).ravel()
        if len(returns) != len(starts):
            raise DataError(f"{path}: field 'episode_returns' has {len(returns)} entries for "
                            f"{len(starts)} episodes")
    else:
        # Another split than the stored one: the returns must come from the step rewards.
        if rewards is None or np.isnan(rewards).any():
            raise DataError(f"{path}: split={split!r} needs complete step rewards, but field "
                            f"'rewards' is missing or has NaN (episodes known by return only); "
                            f"use split='gac'")
        returns = np.add.reduceat(rewards.astype(np.float64), starts)
    metadata["source"] = str(path)
    # The arrays as read (already float32 after _validate): a second copy would double the
    # peak memory of loading.
    return TrajectoryStore(
        observations=data["observations"].astype(np.float32, copy=False),
        actions=data["actions"].astype(np.float32, copy=False),
        rewards=None if rewards is None else rewards.astype(np.float32, copy=False),
        terminals=data["terminals"].astype(bool, copy=False),
        timeouts=data["timeouts"].astype(bool, copy=False),
        starts=starts,
        returns=returns,
        metadata=metadata,
    )


def peek(path: str | Path) -> tuple[str | None, bool]:
    """(the task a file's attributes name, whether it stores episode starts), without reading
    its arrays; (None, False) for anything unreadable (``load_hdf5`` then says what is wrong)."""
    try:
        with h5py.File(path, "r") as f:
            task = f.attrs.get("task")
            return (_unattr(task) if task is not None else None), "episode_starts" in f
    except (OSError, ValueError):
        return None, False


def _validate(path: Path, data: dict[str, np.ndarray], low: Any, high: Any) -> None:
    """Check shapes, lengths, dtypes and values in place; D4RL's (N, 1) columns are flattened."""
    for key, values in data.items():
        if values.dtype.kind not in "biuf":
            raise DataError(f"{path}: field '{key}' is not numeric (dtype {values.dtype})")
    obs = data["observations"]
    if obs.size == 0:
        raise DataError(f"{path}: empty dataset (field 'observations' has shape {obs.shape})")
    if obs.ndim != 2:
        raise DataError(f"{path}: field 'observations' must be 2-D (steps, obs_dim), "
                        f"got shape {obs.shape}")
    n = len(obs)
    if data["actions"].ndim != 2:
        raise DataError(f"{path}: field 'actions' must be 2-D (steps, act_dim), "
                        f"got shape {data['actions'].shape}")
    for key in PER_STEP_1D:
        if key in data and data[key].ndim == 2 and data[key].shape[1] == 1:
            data[key] = data[key][:, 0]  # some D4RL files store (N, 1) columns
        if key in data and data[key].ndim != 1:
            raise DataError(f"{path}: field '{key}' must be 1-D (steps,), got shape "
                            f"{data[key].shape}")
    for key in ("actions", *PER_STEP_1D, "next_observations"):
        if key in data and len(data[key]) != n:
            raise DataError(f"{path}: length mismatch: field '{key}' has {len(data[key])} "
                            f"steps, 'observations' has {n}")
    if "next_observations" in data and data["next_observations"].shape != obs.shape:
        raise DataError(f"{path}: field 'next_observations' has shape "
                        f"{data['next_observations'].shape}, 'observations' has {obs.shape}")
    for key in ("terminals", "timeouts"):
        flags = data[key]
        odd = (flags != 0) & (flags != 1)
        if odd.any():
            row = int(np.flatnonzero(odd)[0])
            raise DataError(f"{path}: field '{key}' has {int(odd.sum())} value(s) other than 0/1 "
                            f"(first at step {row}: {flags[row]!r}); it marks episode ends")
    for key in ("observations", "actions", "rewards", "next_observations", "episode_returns"):
        if key not in data:
            continue
        values = data[key]
        if key != "episode_returns":  # checked as stored: float32 (returns stay float64)
            with np.errstate(over="ignore", invalid="ignore"):
                data[key] = values = values.astype(np.float32, copy=False)
        bad = ~np.isfinite(values)
        if key == "rewards" and "episode_returns" in data:
            bad = np.isinf(values)  # NaN marks steps of episodes known by return only
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{path}: field '{key}' has {int(bad.sum())} NaN/inf value(s) "
                            f"(first at step {row}; values beyond float32's range, about "
                            f"3.4e38, become inf)")
    acts = data["actions"]
    if low is not None or high is not None:
        bounds = {}
        for name, value in (("action_low", low), ("action_high", high)):
            if value is None:
                continue
            bound = np.asarray(value, dtype=np.float64)
            if bound.shape not in ((), (acts.shape[1],)):
                raise DataError(f"{path}: {name} has shape {bound.shape}, but the actions have "
                                f"shape {acts.shape} (act_dim {acts.shape[1]}): expected a "
                                f"number or {acts.shape[1]} values")
            bounds[name] = bound
        lo, hi = bounds.get("action_low", -np.inf), bounds.get("action_high", np.inf)
        outside = (acts < lo - 1e-6) | (acts > hi + 1e-6)
        if outside.any():
            row = int(np.argwhere(outside)[0][0])
            raise DataError(
                f"{path}: field 'actions' has {int(outside.any(1).sum())} step(s) outside the "
                f"action space [{low}, {high}] (first at step {row}: {acts[row]})")
    else:
        outside = np.abs(acts) > 1 + 1e-6
        if outside.any():
            warnings.warn(f"{path}: field 'actions' has {int(outside.any(1).sum())} of {len(acts)} "
                          f"step(s) outside [-1, 1] (largest |a| {float(np.abs(acts).max()):.3g}) "
                          f"and the file gives no action_low/action_high; the policy's tanh "
                          f"head cannot reach them: rescale the actions to [-1, 1]",
                          DataWarning, stacklevel=3)


def _check_episode_ends(path: Path, data: dict[str, np.ndarray], starts: np.ndarray) -> None:
    """A stream cut into (mostly) one-step episodes: terminals or timeouts that mark nearly
    every step, which no real dataset does."""
    n = len(data["actions"])
    lengths = np.diff(np.append(starts, n))
    ones = int((lengths == 1).sum())
    if n > 1 and ones == len(lengths):
        raise DataError(f"{path}: every step ends an episode ('terminals' true at "
                        f"{int(data['terminals'].sum())} of {n} steps, 'timeouts' at "
                        f"{int(data['timeouts'].sum())}): the episodes would all be one step long")
    if len(lengths) > 1 and ones > len(lengths) // 2:
        warnings.warn(f"{path}: {ones} of {len(lengths)} episodes are one step long ('terminals' "
                      f"true at {int(data['terminals'].sum())} of {n} steps)", DataWarning,
                      stacklevel=3)


def _split(data: dict[str, np.ndarray], split: str) -> np.ndarray:
    """Episode starts of a flat D4RL stream."""
    n = len(data["actions"])
    ends = data["timeouts"].astype(bool) | data["terminals"].astype(bool)
    if split == "maze2d":
        obs = data["observations"]
        # D4RL's maze2d generator does not advance the state after a goal change, so the next
        # row repeats this one exactly; a moving point mass never does that.
        moving = np.any(obs[:-1, 2:4] != 0, axis=1) if obs.shape[1] >= 4 else True
        jump = np.all(obs[1:] == obs[:-1], axis=1) & moving
        if "next_observations" in data:  # where given, the true successor says it directly
            jump |= np.any(data["next_observations"][:-1] != obs[1:], axis=1)
        ends[:-1] |= jump
    elif split != "locomotion":
        raise DataError(f"unknown split {split!r}: use auto, locomotion, maze2d or gac")
    # An episode starts after every cut except one at the very last step.
    return np.concatenate([[0], np.flatnonzero(ends[: n - 1]) + 1]).astype(np.int64)


def _attr(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    if isinstance(value, dict | list | tuple):
        return "json:" + json.dumps(value, default=_jsonable)
    if value is None:
        return "none:"
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _read_attr(path: Path, key: str, value: Any) -> Any:
    try:
        return _unattr(value)
    except json.JSONDecodeError as exc:
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        raise DataError(f"{path}: attribute {key!r} is marked as JSON but does not parse "
                        f"({exc.msg}, character {exc.pos}): {text[:60]!r}") from None


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
