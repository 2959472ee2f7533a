"""Maze tasks: the evaluation environment, the expert controller, and reference returns."""

from __future__ import annotations

import numpy as np
import pytest

from gac.data.maze_generator import measure_references
from gac.tasks import TASKS, d4rl_reference, get_task, normalized_score
from gac.tasks.maze import GOAL_RADIUS, MazeEnv, WaypointController


def test_registry_and_d4rl_names():
    assert {"pointmaze-umaze-goal", "pointmaze-medium-goal-dense", "pointmaze-large-goal"} <= set(TASKS)
    assert get_task("pointmaze-medium-goal").horizon == 600
    assert get_task("pointmaze-large-goal-dense").d4rl_dataset == "maze2d-large-dense-v1"
    with pytest.raises(KeyError, match="unknown task"):
        get_task("pointmaze-huge")


def test_references_and_normalised_score():
    assert d4rl_reference("maze2d-umaze-v1") == (23.85, 161.86)
    assert d4rl_reference("hopper-medium-replay-v2") == d4rl_reference("hopper")
    with pytest.raises(KeyError):
        d4rl_reference("ant-maze-v9")
    assert normalized_score(161.86, 23.85, 161.86) == pytest.approx(100.0)
    np.testing.assert_allclose(normalized_score(np.array([10.0, 20.0]), 10.0, 20.0), [0, 100])
    with pytest.raises(ValueError, match="equal"):
        normalized_score(1.0, 2.0, 2.0)


def test_env_reset_is_seeded_and_observations_are_flat():
    env = get_task("pointmaze-umaze-goal").make_env()
    a, b, c = env.reset(seed=4), env.reset(seed=4), env.reset(seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (6,) and a.dtype == np.float32
    np.testing.assert_allclose(a[4:], env.eval_goal, rtol=1e-6)
    np.testing.assert_allclose(c[:2], env.position, rtol=1e-6)  # the last reset's state
    obs, reward, terminated, truncated, _ = env.step(np.array([1.0, -1.0]))
    assert not terminated and not truncated and reward in (0.0, 1.0)
    assert np.linalg.norm(obs[:2] - c[:2]) > 0
    env.close()
    small = MazeEnv(get_task("pointmaze-umaze-goal").spec, goal_in_obs=False)
    assert small.reset(seed=0).shape == (4,)
    small.close()


def test_physics_step_is_pointmazes_own_to_the_bit():
    # MazeEnv.advance steps MuJoCo directly; PointMaze's PointEnv.step is the reference. Long
    # pushes in one direction exceed the velocity clip, and the large maze's walls are hit.
    fast, ref = (MazeEnv(get_task("pointmaze-large-goal").spec) for _ in range(2))
    rng = np.random.default_rng(0)
    clipped = False
    for episode in range(3):
        fast.reset(seed=episode)
        ref.reset(seed=episode)
        for _ in range(100):
            action = rng.uniform(-2.0, 2.0, size=2)  # out-of-range parts are clipped
            for _ in range(int(rng.integers(1, 12))):
                clipped |= bool(np.abs(fast.data.qvel).max() > 5.0)
                fast.advance(action)
                ref._env.point_env.step(action)
                np.testing.assert_array_equal(fast.data.qpos, ref.data.qpos)
                np.testing.assert_array_equal(fast.data.qvel, ref.data.qvel)
    assert clipped  # the velocity clip was exercised
    for bad in (0.5, [0.1, 0.2, 0.3]):  # a scalar would otherwise broadcast to both forces
        with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
            fast.advance(bad)
    fast.close()
    ref.close()


def test_sparse_and_dense_rewards_follow_d4rl():
    for dense in (False, True):
        env = get_task("pointmaze-umaze-goal-dense" if dense else "pointmaze-umaze-goal").make_env()
        env.reset(seed=0)
        env.set_goal(env.position + np.array([0.3, 0.0]))
        near = env.reward()
        env.set_goal(env.position + np.array([GOAL_RADIUS + 0.2, 0.0]))
        far = env.reward()
        if dense:
            assert near == pytest.approx(np.exp(-0.3)) and far == pytest.approx(np.exp(-0.7))
        else:
            assert (near, far) == (1.0, 0.0)
        env.close()


def test_expert_reaches_the_umaze_goal():
    """The noiseless waypoint controller on the evaluation task: within 0.5 of the goal in at
    least 95% of 40 episodes of 300 steps."""
    task = get_task("pointmaze-umaze-goal")
    env = task.make_env()
    expert = WaypointController(env.maze)
    reached = []
    for seed in range(40):
        env.reset(seed=seed)
        best = np.inf
        for _ in range(task.horizon):
            env.step(expert(env.position, env.velocity, env.goal))
            best = min(best, float(np.linalg.norm(env.position - env.goal)))
        reached.append(best < 0.5)
    env.close()
    assert np.mean(reached) >= 0.95


def test_expert_beats_random_on_umaze():
    r_random, r_expert = measure_references(get_task("pointmaze-umaze-goal"), episodes=4, seed=1)
    assert r_expert > r_random + 50  # the expert sits at the goal for most of its 300 steps
    assert r_random >= 0.0
