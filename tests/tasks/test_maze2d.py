"""D4RL's maze2d: the frame map, the evaluation env, the data recipe, and real D4RL files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from gac.cli import app
from gac.data.datasets import d4rl_task_of, load_file, make_dataset
from gac.data.hdf5 import load_hdf5
from gac.data.maze_generator import MazeDataConfig, generate_maze2d_dataset
from gac.data.store import DataError
from gac.tasks import D4RLFrame, Maze2DTask, get_task
from gac.tasks.maze import GOAL_RADIUS, open_cells

runner = CliRunner()


@pytest.mark.parametrize("maze", ["umaze", "medium", "large"])
def test_frame_maps_cells_to_d4rl_grid_indices_and_back(maze):
    env = get_task(f"maze2d-{maze}").make_env()
    frame = env.frame
    for r, c in open_cells(env.maze):
        pm = np.asarray(env.maze.cell_rowcol_to_xy(np.array([r, c])))
        np.testing.assert_allclose(frame.pos_to_d4rl(pm), [r, c], atol=1e-9)  # x = row, y = col
        np.testing.assert_allclose(frame.pos_from_d4rl(frame.pos_to_d4rl(pm)), pm, atol=1e-9)
    v = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_allclose(frame.vec_from_d4rl(frame.vec_to_d4rl(v)), v)
    # The evaluation goal is D4RL's 'G' cell, exactly.
    np.testing.assert_allclose(env.goal, env.spec.goal_cell)
    env.close()


def test_actions_push_along_d4rl_axes():
    """A +x action in D4RL's frame moves the ball to a higher row, +y to a higher column."""
    env = get_task("maze2d-medium").make_env()
    for action, axis in (([1.0, 0.0], 0), ([0.0, 1.0], 1)):
        obs = env.reset(seed=3)
        for _ in range(5):
            nxt, *_ = env.step(np.array(action))
        assert nxt[2 + axis] > obs[2 + axis] + 0.1  # the velocity along that axis grew
        assert nxt[2 + 1 - axis] == pytest.approx(obs[2 + 1 - axis], abs=0.1)
    env.close()


def test_reset_follows_d4rl_and_reward_is_sparse_at_the_goal():
    env = get_task("maze2d-umaze").make_env()
    starts = np.array([env.reset(seed=s) for s in range(200)])
    assert starts.shape == (200, 4) and starts.dtype == np.float32
    np.testing.assert_array_equal(env.reset(seed=7), env.reset(seed=7))
    # Every start is an open cell (the goal cell included) within +-0.1, at a small speed.
    cells = np.rint(starts[:, :2]).astype(int)
    grid = np.array(env.maze.maze_map, dtype=object) != 1
    assert grid[cells[:, 0], cells[:, 1]].all()
    assert np.abs(starts[:, :2] - cells).max() <= 0.1 + 1e-6
    assert len({tuple(c) for c in cells}) == len(open_cells(env.maze))
    assert np.abs(starts[:, 2:]).max() < 0.6
    # At the goal the sparse reward is 1, far from it 0.
    env.reset(seed=0)
    env.set_state(np.array([*(env.goal + 0.3), 0.0, 0.0]))
    assert env.step(np.zeros(2))[1] == 1.0
    env.set_state(np.array([3.0, 1.0, 0.0, 0.0]))
    assert env.step(np.zeros(2))[1] == 0.0
    env.close()


def test_set_state_puts_the_ball_at_a_d4rl_frame_observation():
    """A recorded state (D4RL's frame) replayed in our env reads back as itself and moves
    along its own velocity; a wrong shape is refused by name."""
    env = get_task("maze2d-medium").make_env()
    env.reset(seed=0)
    state = np.array([3.2, 4.1, 1.5, -0.5])
    np.testing.assert_allclose(env.set_state(state), state, atol=1e-6)
    obs = env.step(np.zeros(2))[0]
    assert obs[0] > 3.2 and obs[1] < 4.1  # moved along (vx, vy) = (+, -)
    with pytest.raises(ValueError, match="set_state"):
        env.set_state(np.zeros(2))
    env.close()


def test_data_follow_d4rl_recipe():
    task = get_task("maze2d-umaze")
    store, extra = generate_maze2d_dataset(task, MazeDataConfig(steps=3000, seed=1, dwell=0,
                                                                reference_episodes=0),
                                           progress=False)
    obs, qpos = store.observations, extra["infos/qpos"]
    assert obs.shape == (3000, 4) and store.act_dim == 2
    ends = np.flatnonzero(store.timeouts[:-1])
    assert len(ends) > 5
    # The row after a goal change repeats the observation (D4RL does not advance it) ...
    np.testing.assert_array_equal(obs[ends + 1], obs[ends])
    # ... while the simulator moved on (infos/qpos is the true state), and elsewhere they agree.
    assert np.abs(qpos[ends + 1] - obs[ends + 1, :2]).max() > 0
    inside = np.setdiff1d(np.arange(3000), ends + 1)
    np.testing.assert_allclose(qpos[inside], obs[inside, :2], atol=1e-5)
    # A segment ends when its goal is reached (no dwell) or after max_episode_steps.
    goals = extra["infos/goal"]
    reached = np.linalg.norm(obs[ends, :2] - goals[ends], axis=1) < 0.1
    assert reached.mean() > 0.8 and (store.lengths <= task.horizon + 1).all()
    assert not np.array_equal(goals[ends[0]], goals[ends[0] + 1])  # a new goal after the end
    # Rewards: the fixed evaluation goal, from infos/qpos, whatever the data's own goal.
    dist = np.linalg.norm(qpos - np.array(task.spec.goal_cell), axis=1)
    np.testing.assert_array_equal(store.rewards, (dist <= GOAL_RADIUS).astype(np.float32))
    np.testing.assert_allclose(store.returns, np.add.reduceat(store.rewards, store.starts))
    # Same seed, same data.
    again, _ = generate_maze2d_dataset(task, MazeDataConfig(steps=3000, seed=1, dwell=0,
                                                            reference_episodes=0), progress=False)
    np.testing.assert_array_equal(again.observations, obs)


def test_maze2d_refuses_a_dwell(tmp_path):
    with pytest.raises(ValueError, match="dwell"):
        make_dataset("maze2d-umaze", steps=100, out=tmp_path / "x.hdf5", dwell=5)


def write_d4rl_maze2d(path, task_name="maze2d-umaze", steps=2500, seed=0):
    """A file in D4RL's exact maze2d layout: flat (N, ...) keys, timeouts at goal changes, the
    repeated row, infos/*, no gac attributes or episode starts."""
    task = get_task(task_name)
    store, extra = generate_maze2d_dataset(task, MazeDataConfig(steps=steps, seed=seed, dwell=0,
                                                                reference_episodes=0),
                                           progress=False)
    with h5py.File(path, "w") as f:
        f["observations"] = store.observations
        f["actions"] = store.actions
        f["rewards"] = store.rewards
        f["terminals"] = np.zeros(steps, bool)
        f["timeouts"] = store.timeouts
        for key, value in extra.items():
            f[key] = value
    return store


@pytest.fixture(autouse=True)
def _few_reference_episodes(monkeypatch):
    import gac.tasks.maze2d as maze2d

    monkeypatch.setattr(maze2d, "REFERENCE_EPISODES", 3)


def test_real_d4rl_file_is_recognised_split_and_tagged(tmp_path):
    path = tmp_path / "maze2d-umaze-v1.hdf5"
    made = write_d4rl_maze2d(path)
    assert isinstance(d4rl_task_of(path), Maze2DTask)
    assert d4rl_task_of(tmp_path / "maze2d-large-dense-v1.hdf5").name == "maze2d-large-dense"
    store = load_file(path)
    assert store.metadata["task"] == "maze2d-umaze"
    assert store.metadata["d4rl_dataset"] == "maze2d-umaze-v1"
    assert store.metadata["ref_max_score"] > store.metadata["ref_min_score"]
    np.testing.assert_array_equal(store.starts, made.starts)  # cut at goal changes
    # A file whose positions are not in this maze (e.g. PointMaze's centred frame) is refused.
    bad = tmp_path / "maze2d-medium-v1.hdf5"
    write_d4rl_maze2d(bad)  # umaze positions: rows/cols 1..3 are walls in parts of medium
    with h5py.File(bad, "r+") as f:
        f["observations"][:, :2] -= 2.0  # PointMaze's frame is centred on (0, 0)
    with pytest.raises(DataError, match="open cells"):
        load_file(bad)


def test_d4rl_file_trains_and_evaluates_end_to_end(tmp_path):
    path = tmp_path / "maze2d-umaze-v1.hdf5"
    write_d4rl_maze2d(path, steps=2000)
    run_dir = tmp_path / "run"
    tiny = ["--set", "model.d_model=16", "--set", "train.batch_size=8", "--set",
            "train.warmup_steps=1", "--set", "inference.ascent_steps=2"]
    res = runner.invoke(app, ["train", str(path), "--steps", "3", "--run-dir", str(run_dir),
                              "--eval-episodes", "2", *tiny])
    assert res.exit_code == 0, res.output
    assert "maze2d-umaze" in res.output
    ev = runner.invoke(app, ["eval", str(run_dir / "checkpoint.pt"), "--episodes", "2",
                             "--seeds", "0", "--envs", "2", "--set", "inference.ascent_steps=2"])
    assert ev.exit_code == 0, ev.output
    assert "D4RL scale" in ev.output


def test_a_dataset_of_other_dimensions_fails_before_training(tmp_path, tiny_maze_path):
    path = tmp_path / "maze2d-umaze-v1.hdf5"
    write_d4rl_maze2d(path, steps=500)
    res = runner.invoke(app, ["train", str(path), "--task", "pointmaze-umaze-goal", "--steps",
                              "3", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "observations" in res.output and "6" in res.output and "4" in res.output
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    # The other way round: 6-dim goal-conditioned data for a 4-dim maze2d task.
    res = runner.invoke(app, ["train", str(tiny_maze_path), "--task", "maze2d-umaze", "--steps",
                              "3", "--run-dir", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "expects 4" in res.output


def test_window_segments_have_the_horizon_and_the_stream_rewards(tmp_path):
    from gac.data.segments import resegment

    path = tmp_path / "maze2d-umaze-v1.hdf5"
    write_d4rl_maze2d(path, steps=1000)
    store = load_file(path)
    windows = resegment(store, "window", 300)
    np.testing.assert_array_equal(windows.starts, [0, 300, 600, 900])
    np.testing.assert_allclose(windows.returns.sum(), store.rewards.sum())
    np.testing.assert_allclose(windows.returns[0], store.rewards[:300].sum())
    assert resegment(store, "goal", 300) is store
    with pytest.raises(ValueError, match="segments"):
        resegment(store, "thirds", 300)


def test_old_task_names_still_resolve():
    assert get_task("pointmaze-umaze").name == "pointmaze-umaze-goal"
    assert get_task("pointmaze-large-dense").name == "pointmaze-large-goal-dense"
    assert get_task("maze2d-medium").obs_dim == 4 and get_task("pointmaze-medium").obs_dim == 6


def test_loaded_file_of_gac_layout_keeps_its_episodes(tmp_path):
    path = make_dataset("maze2d-umaze", steps=1500, out=tmp_path / "g.hdf5", progress=False,
                        reference_episodes=2)
    store = load_hdf5(path)
    assert store.metadata["task"] == "maze2d-umaze" and store.metadata["ref_episodes"] == 2
    with h5py.File(path) as f:
        assert {"infos/goal", "infos/qpos", "infos/qvel"} <= set(f) | {f"infos/{k}" for k in f["infos"]}
    assert D4RLFrame  # exported


def test_the_per_step_observation_is_the_frame_map_to_the_bit():
    """Maze2DEnv builds each step's observation from four scalars (``state_to_obs``) and maps
    its action from two (``action_from_d4rl``), not with the array maps: the same numbers, for
    any state and action."""
    env = get_task("maze2d-large").make_env()
    rng = np.random.default_rng(0)
    for qpos, qvel in zip(rng.normal(0, 4, (50, 2)), rng.normal(0, 3, (50, 2)), strict=True):
        np.testing.assert_array_equal(env.frame.state_to_obs(qpos, qvel),
                                      env.frame.obs_to_d4rl(qpos, qvel).astype(np.float32))
        np.testing.assert_array_equal(env.frame.action_from_d4rl(qvel),
                                      env.frame.vec_from_d4rl(qvel))
    env.reset(seed=0)
    for action in rng.uniform(-1.5, 1.5, (20, 2)):
        obs, *_ = env.step(action)
        me = env._maze_env
        np.testing.assert_array_equal(
            obs, env.frame.obs_to_d4rl(me.position, me.velocity).astype(np.float32))
    env.close()
