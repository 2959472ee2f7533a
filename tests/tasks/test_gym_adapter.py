"""The Gymnasium view of gac task envs: spaces, horizon truncation, seeding, Gymnasium's checker."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from gac.tasks import get_task
from gac.tasks.gym_adapter import GymTaskEnv, make_gym_env


def test_spaces_follow_the_task_env():
    env = make_gym_env("pointmaze-umaze-goal")
    assert isinstance(env, gym.Env)
    assert env.horizon == get_task("pointmaze-umaze-goal").horizon == 300
    assert env.observation_space.shape == (6,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, [-1, -1])
    np.testing.assert_array_equal(env.action_space.high, [1, 1])
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and info == {}
    env.close()


def test_truncates_at_the_horizon_and_reset_restarts_the_count():
    env = GymTaskEnv(get_task("pointmaze-umaze-goal").make_env, horizon=7)
    for _ in range(2):
        env.reset(seed=1)
        flags = [env.step(env.action_space.sample())[2:4] for _ in range(7)]
        assert flags[:-1] == [(False, False)] * 6
        assert flags[-1] == (False, True)  # the maze never terminates: only the time limit ends it
    env.close()


def test_reset_seed_makes_episodes_deterministic():
    def play(seed: int) -> np.ndarray:
        env = make_gym_env("pointmaze-umaze-goal")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        traj = [obs]
        for _ in range(20):
            traj.append(env.step(rng.uniform(-1, 1, 2).astype(np.float32))[0])
        env.close()
        return np.stack(traj)

    np.testing.assert_array_equal(play(3), play(3))
    assert not np.array_equal(play(3)[0], play(4)[0])


def test_passes_gymnasium_env_checker():
    env = make_gym_env("pointmaze-umaze-goal")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    env.close()
    # Unbounded observations and no registered spec (so no render-mode test) are expected.
    unexpected = [str(w.message) for w in caught
                  if not any(k in str(w.message) for k in ("infinity", "render", "spec"))]
    assert not unexpected
