"""Local Minari datasets into the store (no network: datasets are created in a tmp folder)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gac.data.store import DataError

minari = pytest.importorskip("minari")
gym = pytest.importorskip("gymnasium")
from minari.data_collector import EpisodeBuffer  # noqa: E402

from gac.data.minari_io import load_minari  # noqa: E402

LENGTHS = (5, 9, 4)
INFO = {"algorithm_name": "test", "author": "gac", "author_email": "gac@example.org",
        "code_permalink": "https://example.org/gac", "description": "toy"}


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def box_buffers(seed: int = 0, bad_action: bool = False) -> list:
    rng = np.random.default_rng(seed)
    buffers = []
    for e, t in enumerate(LENGTHS):
        actions = rng.uniform(-2, 2, (t, 1)).astype(np.float32)
        if bad_action and e == 1:
            actions[3, 0] = 7.0
        buffers.append(EpisodeBuffer(
            observations=rng.normal(size=(t + 1, 3)).astype(np.float32), actions=actions,
            rewards=rng.normal(size=t).tolist(), terminations=[False] * (t - 1) + [e == 0],
            truncations=[False] * (t - 1) + [e != 0], infos={}))
    return buffers


def create(dataset_id: str, buffers: list, **kwargs) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minari.create_dataset_from_buffers(dataset_id=dataset_id, buffer=buffers, **INFO,
                                                  **kwargs)


def test_box_dataset_becomes_a_store(minari_root):
    buffers = box_buffers()
    create("gac-test/toy-v0", buffers, env="Pendulum-v1", ref_min_score=-5.0, ref_max_score=3.5)
    store = load_minari("gac-test/toy-v0")
    assert store.num_episodes == 3 and store.obs_dim == 3 and store.act_dim == 1
    np.testing.assert_array_equal(store.lengths, LENGTHS)
    for e, buf in enumerate(buffers):
        ep = store.episode(e)
        np.testing.assert_array_equal(ep.observations, buf.observations[:-1])  # T of T+1
        np.testing.assert_array_equal(ep.actions, buf.actions)
        np.testing.assert_allclose(ep.rewards, buf.rewards, rtol=1e-6)
        assert store.returns[e] == pytest.approx(sum(buf.rewards))
        assert ep.terminal == (e == 0)
    ends = store.starts + store.lengths - 1
    np.testing.assert_array_equal(store.terminals[ends], [True, False, False])
    np.testing.assert_array_equal(store.timeouts[ends], [False, True, True])
    assert store.terminals.sum() + store.timeouts.sum() == 3
    meta = store.metadata
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (-5.0, 3.5)
    assert meta["minari_dataset_id"] == "gac-test/toy-v0" and meta["env_id"] == "Pendulum-v1"
    assert meta["action_low"] == [-2.0] and meta["action_high"] == [2.0]


def test_explicit_data_path_and_hdf5_round_trip(minari_root, tmp_path, monkeypatch):
    create("gac-test/toy-v0", box_buffers(1), env="Pendulum-v1")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))
    store = load_minari("gac-test/toy-v0", data_path=str(minari_root))
    assert "ref_min_score" not in store.metadata  # none in the dataset: none invented
    from gac.data.hdf5 import load_hdf5, save_hdf5

    back = load_hdf5(save_hdf5(store, tmp_path / "from-minari.hdf5"))
    np.testing.assert_array_equal(back.observations, store.observations)
    np.testing.assert_array_equal(back.returns, store.returns)
    assert back.metadata["minari_dataset_id"] == "gac-test/toy-v0"
    # The training entry point takes the same id.
    from gac.data.datasets import resolve_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    assert resolve_dataset("minari:gac-test/toy-v0").num_steps == sum(LENGTHS)


def goal_space(with_observation: bool = True):
    box = gym.spaces.Box(-10, 10, (4,), np.float64)
    goal = gym.spaces.Box(-10, 10, (2,), np.float64)
    return gym.spaces.Dict({"observation" if with_observation else "position": box,
                            "achieved_goal": goal, "desired_goal": goal})


def goal_buffer(t: int, with_observation: bool = True):
    key = "observation" if with_observation else "position"
    obs = {key: np.arange((t + 1) * 4, dtype=np.float64).reshape(t + 1, 4),
           "achieved_goal": np.zeros((t + 1, 2)), "desired_goal": np.full((t + 1, 2), 7.0)}
    return EpisodeBuffer(observations=obs, actions=np.zeros((t, 2), np.float32),
                         rewards=[0.0] * (t - 1) + [1.0], terminations=[False] * t,
                         truncations=[False] * (t - 1) + [True], infos={})


def test_dict_observations_are_flattened(minari_root):
    create("gac-test/maze-v0", [goal_buffer(6), goal_buffer(3)], observation_space=goal_space(),
           action_space=gym.spaces.Box(-1, 1, (2,), np.float32))
    store = load_minari("gac-test/maze-v0")
    assert store.obs_dim == 6  # observation (4) then desired_goal (2); achieved_goal dropped
    first = store.episode(0).observations
    np.testing.assert_array_equal(first[:, :4], np.arange(24).reshape(6, 4))
    np.testing.assert_array_equal(first[:, 4:], 7.0)
    np.testing.assert_array_equal(store.returns, [1.0, 1.0])


def test_unusable_dict_observations_are_refused(minari_root):
    create("gac-test/odd-v0", [goal_buffer(4, with_observation=False)],
           observation_space=goal_space(with_observation=False),
           action_space=gym.spaces.Box(-1, 1, (2,), np.float32))
    with pytest.raises(DataError, match=r"gac-test/odd-v0.*'observations' is a dict with keys "
                                        r"\['achieved_goal', 'desired_goal', 'position'\]"):
        load_minari("gac-test/odd-v0")


def test_actions_outside_the_space_are_refused(minari_root):
    create("gac-test/bad-v0", box_buffers(bad_action=True), env="Pendulum-v1")
    with pytest.raises(DataError, match=r"gac-test/bad-v0.*episode 1: field 'actions' has 1 "
                                        r"step\(s\) outside the action space"):
        load_minari("gac-test/bad-v0")


def test_missing_dataset_is_reported_without_downloading(minari_root, monkeypatch):
    import minari.storage.hosting as hosting

    monkeypatch.setattr(hosting, "download_dataset", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(DataError, match=r"gac-test/absent-v0.*not found locally.*minari download"):
        load_minari("gac-test/absent-v0")


def test_missing_minari_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari.dataset.minari_dataset", None)
    with pytest.raises(ImportError, match=r"pip install 'gac\[minari\]'"):
        load_minari("anything-v0")
