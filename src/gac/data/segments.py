"""Ways to cut a dataset's stream into trajectories (``DataConfig.segments``)."""

from __future__ import annotations

import numpy as np

from gac.data.store import DataError, TrajectoryStore


def resegment(store: TrajectoryStore, segments: str, horizon: int) -> TrajectoryStore:
    """``goal``: the store as it is. ``window``: consecutive windows of ``horizon`` steps over
    the whole stream (across goal changes), each labelled with its summed step rewards (the
    last window may be shorter)."""
    if segments == "goal":
        return store
    if segments != "window":
        raise ValueError(f"unknown segments {segments!r}: use goal or window")
    if store.rewards is None or np.isnan(store.rewards).any():
        raise DataError(f"{store.metadata.get('source', 'dataset')}: segments=window needs the "
                        f"step rewards of the whole stream, and this dataset has episodes known "
                        f"by their return only")
    n = store.num_steps
    starts = np.arange(0, n, horizon, dtype=np.int64)
    timeouts = np.zeros(n, bool)
    timeouts[starts[1:] - 1] = True
    timeouts[-1] = True
    return TrajectoryStore(
        observations=store.observations, actions=store.actions, rewards=store.rewards,
        terminals=np.zeros(n, bool), timeouts=timeouts, starts=starts,
        returns=np.add.reduceat(store.rewards.astype(np.float64), starts),
        metadata={**store.metadata, "segments": f"windows of {horizon} steps"})
