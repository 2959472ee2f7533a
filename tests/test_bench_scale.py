"""benchmarks/scale.py: the sized stores it builds (prefixes of whole episodes, repeats beyond
the base stream) and one small run of every measurement."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from scale import dataset_files, measure_one, take, time_updates  # noqa: E402

from gac.data.store import Episode, TrajectoryStore  # noqa: E402

TINY = ["model.d_model=16", "model.n_layers=1", "model.prior=mlp", "model.mlp_hidden=16",
        "train.batch_size=4", "train.window=4"]


def toy(lengths: tuple[int, ...]) -> TrajectoryStore:
    eps = [Episode(np.full((n, 2), e, np.float32), np.zeros((n, 1), np.float32),
                   np.ones(n, np.float32), False, float(n)) for e, n in enumerate(lengths)]
    return TrajectoryStore.from_episodes(eps)


def test_take_keeps_whole_episodes_and_repeats_beyond_the_stream():
    store = toy((5, 7, 3))
    small = take(store, 13)  # episodes 0 and 1 end by step 12; episode 2 would run past 13
    assert small.num_steps == 12 and small.num_episodes == 2
    np.testing.assert_array_equal(small.lengths, [5, 7])
    assert take(store, 15).num_steps == 15
    big = take(store, 40)  # three copies (45 steps) cut to the whole episodes within 40
    assert big.num_steps == 35 and big.num_episodes == 7
    np.testing.assert_array_equal(big.lengths, [5, 7, 3, 5, 7, 3, 5])
    np.testing.assert_array_equal(big.episode(3).observations, store.episode(0).observations)
    assert big.timeouts.sum() == big.num_episodes


def test_every_measurement_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GAC_CACHE", str(tmp_path))
    files = dataset_files("pointmaze-umaze-goal", [800, 3000], base=1500)
    assert all(p.exists() for p in files.values())
    per_update = time_updates(files, "pointmaze-umaze-goal", TINY, 1, updates=2, rounds=2)
    assert set(per_update) == {800, 3000} and all(v > 0 for v in per_update.values())
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("the peak-memory reset needs Linux")
    row = measure_one(files[3000], files[800], "pointmaze-umaze-goal", TINY, 1, updates=2)
    assert 2500 < row["steps"] <= 3000
    assert all(math.isfinite(row[k]) for k in ("load_s", "array_mib", "peak_mib"))
