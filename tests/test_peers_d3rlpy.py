"""The d3rlpy peers of the offline-to-online benchmark: data conversion and a tiny end-to-end run."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("d3rlpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peers_d3rlpy import run_peer, to_mdp_dataset  # noqa: E402

from gac.data import load_hdf5  # noqa: E402
from gac.data.datasets import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset("pointmaze-umaze-goal", steps=3000, out=tmp_path_factory.mktemp("peers") / "d.hdf5",
                        reference_episodes=2, progress=False)


def test_episodes_split_where_ours_do(tiny_path: Path):
    store = load_hdf5(tiny_path)
    episodes = to_mdp_dataset(store).episodes
    # A one-step segment holds no transition (its next observation is not in it): d3rlpy drops it.
    assert [len(e.observations) for e in episodes] == [n for n in store.lengths.tolist() if n > 1]
    assert not any(e.terminated for e in episodes)  # maze segments end by timeouts only
    np.testing.assert_array_equal(episodes[1].rewards[:, 0], store.episode(1).rewards)


@pytest.mark.parametrize("algo", ["calql", "iql"])
def test_tiny_offline_to_online_run(algo: str, tiny_path: Path):
    # Tiny networks: this checks the pipeline (fit, evaluate, fit_online, evaluate), not the peers.
    res = run_peer(algo, "pointmaze-umaze-goal", seed=0, offline_steps=20, online_env_steps=300,
                   eval_episodes=2, dataset=str(tiny_path), hidden=[32, 32])
    assert {"algo", "task", "seed", "offline_score", "final_score", "delta", "env_steps",
            "offline_steps", "wall_s"} <= set(res)
    assert res["algo"] == algo and res["env_steps"] == 300 and res["offline_steps"] == 20
    assert math.isfinite(res["offline_score"]) and math.isfinite(res["final_score"])
    assert res["delta"] == pytest.approx(res["final_score"] - res["offline_score"])
    with pytest.raises(ValueError, match="unknown peer"):
        run_peer("cql", "pointmaze-umaze-goal", 0, 1, 1, dataset=str(tiny_path))
