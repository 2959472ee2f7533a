"""Locomotion tasks: registry names, the env interface, and the v4/v5 differences documented in
gac.tasks.locomotion."""

from __future__ import annotations

import numpy as np
import pytest

from gac.config import preset
from gac.tasks import TASKS, LocomotionTask, d4rl_reference, get_task, normalized_score
from gac.tasks.locomotion import BODIES, KINDS


def test_registry_names_versions_and_references():
    for body in BODIES:
        for kind in KINDS:
            ours, d4rl = get_task(f"{body}-{kind}"), get_task(f"{body}-{kind}-v2")
            assert isinstance(ours, LocomotionTask) and ours.family == "locomotion"
            assert (ours.horizon, ours.return_scale) == (1000, 1000.0)
            assert ours.d4rl_dataset == d4rl.d4rl_dataset == f"{body}-{kind}-v2"
            assert ours.env_id.endswith("-v5") and d4rl.env_id.endswith("-v4")
            assert ours.d4rl_references() is None  # measured ones travel with the dataset
            assert d4rl.d4rl_references() == d4rl_reference(body)
    assert sum(isinstance(t, LocomotionTask) for t in TASKS.values()) == 2 * len(BODIES) * len(KINDS)
    assert get_task("hopper-medium-expert-v2").default_steps == 2_000_000
    assert get_task("hopper-medium").default_steps == 100_000
    assert preset("walker2d-medium-replay").model.context_steps == 16  # the body's preset
    with pytest.raises(KeyError, match="unknown task"):
        get_task("ant-medium")


@pytest.mark.parametrize("body", sorted(BODIES))
def test_env_interface(body):
    env = get_task(f"{body}-medium").make_env()
    spec = BODIES[body]
    a, b, c = env.reset(seed=3), env.reset(seed=3), env.reset(seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (spec.obs_dim,) and a.dtype == np.float32
    assert (env.obs_dim, env.act_dim, env.action_low, env.action_high) == (spec.obs_dim, spec.act_dim,
                                                                          -1.0, 1.0)
    obs, reward, terminated, truncated, _ = env.step(np.zeros(spec.act_dim))
    assert obs.dtype == np.float32 and isinstance(reward, float)
    assert isinstance(terminated, bool) and truncated is False  # gac counts the 1000 steps
    env.close()


def test_out_of_range_actions_are_clipped_not_charged():
    env = get_task("halfcheetah-medium").make_env()
    env.reset(seed=0)
    _, r_clipped, *_ = env.step(np.full(6, 1.0))
    env.reset(seed=0)
    _, r_big, *_ = env.step(np.full(6, 50.0))  # the env's control cost would charge 50^2
    assert r_big == pytest.approx(r_clipped)


def _run(env_id: str, actions: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    from gac.tasks.locomotion import LocomotionEnv

    env = LocomotionEnv(env_id)
    obs, rewards = [env.reset(seed=seed)], []
    terminated = False
    for a in actions:
        o, r, terminated, _, _ = env.step(a)
        obs.append(o)
        rewards.append(r)
        if terminated:
            break
    return np.array(obs), np.array(rewards), terminated


def test_hopper_v4_and_v5_differ_only_in_the_last_healthy_reward():
    actions = np.random.default_rng(0).uniform(-1, 1, (1000, 3))  # falls within ~100 steps
    obs4, rew4, term4 = _run("Hopper-v4", actions)
    obs5, rew5, term5 = _run("Hopper-v5", actions)
    assert term4 and term5
    np.testing.assert_array_equal(obs4, obs5)
    np.testing.assert_allclose(rew4[:-1], rew5[:-1])
    assert rew4[-1] - rew5[-1] == pytest.approx(1.0)  # v5 stops paying the healthy reward


def test_halfcheetah_v4_equals_v5_and_walker2d_v5_has_other_dynamics():
    cheetah = np.random.default_rng(1).uniform(-1, 1, (200, 6))
    o4, r4, _ = _run("HalfCheetah-v4", cheetah)
    o5, r5, _ = _run("HalfCheetah-v5", cheetah)
    np.testing.assert_array_equal(o4, o5)
    np.testing.assert_allclose(r4, r5)
    walker = np.tile([[0.0, 0.0, 0.0, 0.5, 0.5, 0.5]], (60, 1))  # load the right foot
    w4, _, _ = _run("Walker2d-v4", walker)
    w5, _, _ = _run("Walker2d-v5", walker)
    n = min(len(w4), len(w5))
    assert not np.allclose(w4[:n], w5[:n])  # v5: right-foot friction 0.9 -> 1.9


def test_normalised_score_uses_d4rl_references_for_v2_names():
    lo, hi = get_task("hopper-medium-v2").d4rl_references()
    assert (lo, hi) == (-20.272305, 3234.3)
    assert normalized_score(hi, lo, hi) == pytest.approx(100.0)
