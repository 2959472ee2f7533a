"""The maze data generator: determinism, fidelity to the controller, and the stream's structure."""

from __future__ import annotations

import numpy as np
import pytest

from gac.data.datasets import make_dataset, resolve_dataset
from gac.data.hdf5 import load_hdf5
from gac.data.maze_generator import FastWaypointPolicy, MazeDataConfig, generate_maze_dataset
from gac.tasks import get_task
from gac.tasks.maze import GOAL_RADIUS, WaypointController


def generate(seed: int, steps: int = 1500, task: str = "pointmaze-umaze-goal"):
    cfg = MazeDataConfig(steps=steps, seed=seed, reference_episodes=0)
    return generate_maze_dataset(get_task(task), cfg, progress=False)


def test_same_seed_same_data_different_seed_different_data():
    (a, goals_a), (b, goals_b), (c, _) = generate(0), generate(0), generate(1)
    for key in ("observations", "actions", "rewards", "timeouts", "starts", "returns"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(goals_a, goals_b)
    assert not np.array_equal(a.observations, c.observations)
    assert not np.array_equal(a.actions, c.actions)


@pytest.mark.parametrize("name", ["pointmaze-umaze-goal", "pointmaze-medium-goal", "pointmaze-large-goal"])
def test_fast_policy_makes_the_controllers_decisions(name):
    env = get_task(name).make_env()
    controller = WaypointController(env.maze)
    fast = FastWaypointPolicy(controller)
    rng = np.random.default_rng(0)
    half = env.maze.maze_size_scaling * np.array(np.array(env.maze.maze_map).shape[::-1]) / 2
    for _ in range(2000):
        # Positions anywhere (walls and outside the grid too), goals anywhere.
        pos, goal = rng.uniform(-half - 0.3, half + 0.3, size=(2, 2))
        vel = rng.normal(0, 2, size=2)
        expected = controller(pos, vel, goal)
        got = fast.act(*pos.tolist(), *vel.tolist(), *goal.tolist())
        np.testing.assert_array_equal(got, expected)
    env.close()


def test_generated_stream_structure(tiny_maze_path):
    store = load_hdf5(tiny_maze_path)
    task = get_task("pointmaze-umaze-goal")
    meta = store.metadata
    assert meta["task"] == task.name and meta["seed"] == 0 and meta["horizon"] == task.horizon
    assert meta["ref_max_score"] > meta["ref_min_score"] and meta["ref_episodes"] == 4
    assert store.obs_dim == 6 and store.act_dim == 2
    assert np.abs(store.actions).max() <= 1.0
    assert store.lengths.max() <= task.horizon and store.timeouts[-1] and not store.terminals.any()
    np.testing.assert_array_equal(np.flatnonzero(store.timeouts),
                                  np.append(store.starts[1:], store.num_steps) - 1)
    import h5py

    with h5py.File(tiny_maze_path) as f:
        goals = f["infos/goal"][()]
    np.testing.assert_array_equal(store.observations[:, 4:], goals)  # goal is in the observation
    pos = store.observations[:, :2]
    # The state is never reset: consecutive rows are one physics step apart (|v| <= 5, dt 0.01).
    assert np.abs(np.diff(pos, axis=0)).max() < 0.06
    # The reward of a row is D4RL's sparse reward after its action, for that row's goal.
    dist = np.linalg.norm(pos[1:] - goals[:-1], axis=1)
    clear = np.abs(dist - GOAL_RADIUS) > 1e-4
    np.testing.assert_array_equal(store.rewards[:-1][clear], (dist <= GOAL_RADIUS)[clear])
    # A segment ends `dwell` steps after its goal is first reached (within D4RL's 0.1), or at
    # the horizon; with dwell 0 this is D4RL's rule.
    dwell = meta["dwell"]
    ended_by_goal = 0
    for a, length in zip(store.starts[:-1], store.lengths[:-1], strict=True):
        dist_after = np.linalg.norm(pos[a + 1:a + length + 1] - goals[a], axis=1)
        first = np.flatnonzero(dist_after < 0.1)
        if len(first) and first[0] + dwell < task.horizon:
            assert first[0] + dwell == length - 1
            ended_by_goal += 1
        else:
            assert length == task.horizon
    assert ended_by_goal > 0.5 * (store.num_episodes - 1)
    np.testing.assert_allclose(store.returns, np.add.reduceat(store.rewards.astype(np.float64),
                                                              store.starts))


def test_config_is_checked():
    with pytest.raises(ValueError, match="steps"):
        generate(0, steps=0)
    with pytest.raises(ValueError, match="noise"):
        generate_maze_dataset(get_task("pointmaze-umaze-goal"), MazeDataConfig(steps=10, noise=-1.0))


def test_make_dataset_refuses_to_overwrite_before_generating(tmp_path, monkeypatch):
    out = tmp_path / "d.hdf5"
    out.write_bytes(b"keep me")
    import gac.data.maze_generator as generator

    monkeypatch.setattr(generator, "generate_maze_dataset",
                        lambda *a, **k: pytest.fail("generated although the file exists"))
    with pytest.raises(FileExistsError, match="d.hdf5"):
        make_dataset("pointmaze-umaze-goal", steps=100, out=out)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(ValueError, match="steps"):
        make_dataset("pointmaze-umaze-goal", steps=0, out=tmp_path / "zero.hdf5")
    with pytest.raises(KeyError, match="unknown task"):
        make_dataset("pointmaze-nowhere", steps=10, out=tmp_path / "x.hdf5")


def test_resolve_dataset_reads_paths_and_reports_missing_files(tiny_maze_path, tmp_path):
    assert resolve_dataset(str(tiny_maze_path)).num_steps == 4000
    from gac.data.store import DataError

    with pytest.raises(DataError, match="no such file"):
        resolve_dataset(str(tmp_path / "missing.hdf5"))


def test_dwell_zero_switches_goal_on_arrival_like_d4rl():
    cfg = MazeDataConfig(steps=3000, seed=0, reference_episodes=0, dwell=0)
    store, goals = generate_maze_dataset(get_task("pointmaze-umaze-goal"), cfg, progress=False)
    pos = store.observations[:, :2]
    held = generate(0, steps=3000)[0]
    assert store.lengths.mean() < held.lengths.mean()  # holding makes segments longer
    for a, length in zip(store.starts[:-1], store.lengths[:-1], strict=True):
        dist_after = np.linalg.norm(pos[a + 1:a + length + 1] - goals[a], axis=1)
        first = np.flatnonzero(dist_after < 0.1)
        assert (len(first) and first[0] == length - 1) or length == 300


def test_a_cached_dataset_made_meanwhile_by_another_process_is_kept(tmp_path, monkeypatch):
    """Two benchmark processes making the same task and seed: the one that finishes second
    keeps the other's (identical, atomically written) file instead of failing."""
    import gac.data.datasets as datasets

    out = tmp_path / "d.hdf5"
    real = datasets.generate

    def racing(*args, **kwargs):
        made = real(*args, **kwargs)
        monkeypatch.setattr(datasets, "generate", real)
        make_dataset("maze2d-umaze", steps=300, seed=3, out=out, progress=False,
                     reference_episodes=2)  # the other process
        return made

    monkeypatch.setattr(datasets, "generate", racing)
    assert datasets.make_cached("maze2d-umaze", 3, out, progress=False, steps=300,
                                reference_episodes=2) == out
    assert load_hdf5(out).num_steps == 300
