"""Local Minari datasets (the optional ``gac[minari]`` extra) read into a TrajectoryStore.

Only datasets already on disk are read: gac never downloads (``minari download ID`` does).
Minari stores T+1 observations per episode (the last one after the final action); the store
keeps the T that actions were taken in. Dict observations become ``observation`` followed by
``desired_goal`` (the PointMaze layout x, y, vx, vy, gx, gy that gac's maze tasks use).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from gac.data.store import DataError, Episode, TrajectoryStore

INSTALL_HINT = "pip install 'gac[minari]'"


def minari_root(data_path: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding local Minari datasets: ``data_path``, else Minari's own default."""
    if data_path is not None:
        return Path(data_path).expanduser()
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env).expanduser() if env else Path.home() / ".minari" / "datasets"


def load_minari(dataset_id: str, data_path: str | None = None) -> TrajectoryStore:
    """Read the local Minari dataset ``dataset_id`` (e.g. ``D4RL/pointmaze/umaze-v2``).

    ``data_path`` is the datasets root (what ``MINARI_DATASETS_PATH`` would be); by default that
    variable, else ``~/.minari/datasets``.
    """
    try:
        from minari.dataset.minari_dataset import MinariDataset
    except ImportError as exc:
        raise ImportError(f"reading Minari datasets needs the optional extra: {INSTALL_HINT}"
                          ) from exc
    root = minari_root(data_path)
    folder = root / dataset_id / "data"
    name = f"minari dataset {dataset_id!r} ({folder})"
    if not (folder / "metadata.json").is_file():
        raise DataError(f"{name}: not found locally under {root}; gac does not download, run "
                        f"`minari download {dataset_id}` or pass the folder holding it")
    try:
        dataset = MinariDataset(folder)  # a path, so nothing consults the network
        meta = dataset.storage.metadata
        raw_episodes = list(dataset.iterate_episodes())
    except (ValueError, KeyError, OSError, AssertionError, TypeError) as exc:
        raise DataError(f"{name}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if not raw_episodes:
        raise DataError(f"{name}: empty dataset (0 episodes)")

    space = meta.get("action_space")
    low = np.asarray(getattr(space, "low", -np.inf), dtype=np.float64)
    high = np.asarray(getattr(space, "high", np.inf), dtype=np.float64)
    episodes = [_episode(name, ep, low, high) for ep in raw_episodes]

    metadata: dict[str, Any] = {
        "source": f"minari:{dataset_id}",
        "minari_dataset_id": dataset_id,
        "generator": "minari" + (f" ({meta['algorithm_name']})" if meta.get("algorithm_name") else ""),
    }
    env_id = _env_id(meta.get("env_spec"))
    if env_id:
        metadata["env_id"] = env_id
    for key in ("ref_min_score", "ref_max_score"):
        if meta.get(key) is not None:
            metadata[key] = float(meta[key])
    if np.isfinite(low).all() and np.isfinite(high).all() and low.size:
        metadata["action_low"], metadata["action_high"] = low.tolist(), high.tolist()
    return TrajectoryStore.from_episodes(episodes, metadata)


def _episode(name: str, ep: Any, low: np.ndarray, high: np.ndarray) -> Episode:
    where = f"{name}: episode {ep.id}"
    rewards = np.asarray(ep.rewards, dtype=np.float64).ravel()
    t = len(rewards)
    if t == 0:
        raise DataError(f"{where}: empty episode (0 steps)")
    obs = _flat_observations(where, ep.observations)
    if len(obs) == t + 1:
        obs = obs[:-1]  # the observation after the last action has no action of its own
    elif len(obs) != t:
        raise DataError(f"{where}: length mismatch: field 'observations' has {len(obs)} rows "
                        f"for {t} rewards (expected {t + 1})")
    if isinstance(ep.actions, dict | tuple | list):
        raise DataError(f"{where}: field 'actions' is a {type(ep.actions).__name__}; only flat "
                        f"(Box or Discrete) actions are supported")
    actions = np.asarray(ep.actions, dtype=np.float64)
    actions = actions.reshape(len(actions), -1)
    terms = np.asarray(ep.terminations, dtype=bool).ravel()
    truncs = np.asarray(ep.truncations, dtype=bool).ravel()
    for field, values in (("actions", actions), ("terminations", terms), ("truncations", truncs)):
        if len(values) != t:
            raise DataError(f"{where}: length mismatch: field '{field}' has {len(values)} steps, "
                            f"'rewards' has {t}")
    for field, values in (("observations", obs), ("actions", actions), ("rewards", rewards)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{where}: field '{field}' has {int(bad.sum())} NaN/inf value(s) "
                            f"(first at step {int(np.argwhere(bad)[0][0])})")
    outside = (actions < low - 1e-6) | (actions > high + 1e-6)
    if outside.any():
        row = int(np.argwhere(outside)[0][0])
        raise DataError(f"{where}: field 'actions' has {int(outside.any(1).sum())} step(s) "
                        f"outside the action space (first at step {row}: {actions[row]})")
    return Episode(obs.astype(np.float32), actions.astype(np.float32), rewards.astype(np.float32),
                   terminal=bool(terms[-1]), ret=float(rewards.sum()))


def _flat_observations(where: str, observations: Any) -> np.ndarray:
    if isinstance(observations, dict):
        if "observation" not in observations:
            raise DataError(f"{where}: field 'observations' is a dict with keys "
                            f"{sorted(observations)}; gac needs an 'observation' entry (and "
                            f"optionally 'desired_goal') to flatten")
        keys = ["observation"] + (["desired_goal"] if "desired_goal" in observations else [])
        parts = [np.asarray(observations[k], dtype=np.float64) for k in keys]
        for key, part in zip(keys, parts, strict=True):
            if part.ndim > 2 or part.dtype.kind not in "biuf":
                raise DataError(f"{where}: field 'observations/{key}' has shape {part.shape}; "
                                f"only flat vector observations are supported")
        if len({len(p) for p in parts}) > 1:
            raise DataError(f"{where}: length mismatch between observation parts {keys}: "
                            f"{[len(p) for p in parts]}")
        return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)
    if isinstance(observations, tuple | list):
        raise DataError(f"{where}: field 'observations' is a {type(observations).__name__}; only "
                        f"Box, Discrete or dict (observation/desired_goal) spaces are supported")
    obs = np.asarray(observations)
    if obs.ndim > 2 or obs.dtype.kind not in "biuf":
        raise DataError(f"{where}: field 'observations' has shape {obs.shape} (dtype {obs.dtype}); "
                        f"only flat vector observations are supported")
    return obs.astype(np.float64).reshape(len(obs), -1)


def _env_id(env_spec: Any) -> str | None:
    if isinstance(env_spec, str):
        try:
            return json.loads(env_spec).get("id")
        except (ValueError, AttributeError):
            return None
    return getattr(env_spec, "id", None)
