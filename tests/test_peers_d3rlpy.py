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


@pytest.mark.parametrize("algo", ["calql", "iql", "rebrac"])
def test_tiny_offline_to_online_run(algo: str, tiny_path: Path):
    # Tiny networks: this checks the pipeline (fit, evaluate, fit_online, evaluate), not the peers.
    steps = 60 if algo == "rebrac" else 300  # ReBRAC's batches are 4x larger
    res = run_peer(algo, "pointmaze-umaze-goal", seed=0, offline_steps=20, online_env_steps=steps,
                   eval_episodes=2, dataset=str(tiny_path), hidden=[32, 32], stages=2)
    assert {"algo", "task", "seed", "offline_score", "final_score", "delta", "env_steps",
            "offline_steps", "wall_s"} <= set(res)
    assert res["algo"] == algo and res["env_steps"] == steps and res["offline_steps"] == 20
    # Evaluated offline and after each of the two rounds, at their environment steps.
    assert [x for x, _ in res["curve"]] == [0, steps // 2, steps]
    assert res["offline_score"] == res["curve"][0][1] and res["final_score"] == res["curve"][-1][1]
    assert math.isfinite(res["offline_score"]) and math.isfinite(res["final_score"])
    assert res["delta"] == pytest.approx(res["final_score"] - res["offline_score"])
    with pytest.raises(ValueError, match="unknown peer"):
        run_peer("cql", "pointmaze-umaze-goal", 0, 1, 1, dataset=str(tiny_path))


def test_peer_settings_follow_the_reward_kind():
    from peers_d3rlpy import CALQL_FIXED_WEIGHT, make_algo, rebrac_betas

    sparse, dense = make_algo("calql", 10, [8], sparse=True), make_algo("calql", 10, [8], sparse=False)
    # Tuned for the 0/1 maze reward: no Lagrange multiplier, a fixed weight, scaled rewards.
    assert sparse.config.alpha_learning_rate == 0 and dense.config.alpha_learning_rate > 0
    assert sparse.config.conservative_weight * sparse.config.initial_alpha == CALQL_FIXED_WEIGHT
    assert sparse.config.reward_scaler is not None and dense.config.reward_scaler is None
    assert make_algo("calql-lagrange", 10, [8], sparse=True).config.alpha_learning_rate > 0
    assert make_algo("iql", 10, [8], sparse=True).config.expectile == 0.9
    assert make_algo("iql", 10, [8], sparse=False).config.expectile == 0.7
    assert rebrac_betas("hopper-medium-replay") == (0.05, 0.5)  # not hopper-medium's row
    assert rebrac_betas("hopper-medium") == (0.01, 0.001)
    assert rebrac_betas("maze2d-medium") == (0.01, 0.01)
