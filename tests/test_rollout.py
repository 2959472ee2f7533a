"""Batched rollouts: cached decoding gives the same episodes as re-encoding the history."""

from __future__ import annotations

import numpy as np
import torch

from gac.config import InferenceConfig, ModelConfig
from gac.model import GACModel
from gac.rollout import make_envs, rollout
from gac.tasks import get_task


def acting_model(seed: int = 0) -> GACModel:
    """An untrained model whose actions are large and depend on the state and the past actions
    (its heads' weights scaled up), so that returns on the dense task tell actions apart."""
    torch.manual_seed(seed)
    model = GACModel(ModelConfig(obs_dim=6, act_dim=2, d_model=32, n_layers=2, context_steps=4,
                                 max_timestep=300, prior="mlp", return_condition_s0=True))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(5.0)
    return model


def test_cached_and_uncached_rollouts_agree():
    task = get_task("pointmaze-umaze-goal-dense")  # a reward at every step: returns follow actions
    model = acting_model()
    icfg = InferenceConfig(mode="random")
    kw = dict(envs=make_envs(task.make_env, 3), horizon=40, episodes=3, seed=5, icfg=icfg,
              record=True)
    cached = rollout(model, cache=True, **kw)
    uncached = rollout(model, cache=False, **kw)
    actions = np.stack([e.actions for e in cached["episodes"]])
    assert np.abs(actions).mean() > 0.2 and actions.std(axis=(0, 1)).min() > 0.1  # they act
    assert np.ptp(cached["returns"]) > 0.1  # and the episodes differ
    for a, b in zip(cached["episodes"], uncached["episodes"], strict=True):
        np.testing.assert_allclose(a.actions, b.actions, atol=1e-5)
        np.testing.assert_allclose(a.observations, b.observations, atol=1e-4)
    np.testing.assert_allclose(cached["returns"], uncached["returns"], rtol=1e-5)
    np.testing.assert_allclose(cached["predicted"], uncached["predicted"], rtol=1e-6)
    # The actions played are the ones the returns come from: other actions, other returns.
    other = rollout(acting_model(seed=1), cache=True, **kw)
    assert not np.allclose(other["returns"], cached["returns"], rtol=1e-3)


def test_rollout_is_deterministic_and_counts_episodes():
    torch.manual_seed(0)
    task = get_task("pointmaze-umaze-goal")
    model = GACModel(ModelConfig(obs_dim=6, act_dim=2, d_model=32, n_layers=1, context_steps=4,
                                 max_timestep=300, prior="identity"))
    icfg = InferenceConfig(mode="exploit", n_starts=2, ascent_steps=2)
    kw = dict(envs=make_envs(task.make_env, 2), horizon=20, episodes=5, seed=1, icfg=icfg)
    a, b = rollout(model, **kw), rollout(model, **kw)
    assert a["returns"].shape == (5,)
    np.testing.assert_array_equal(a["returns"], b["returns"])
    np.testing.assert_array_equal(a["predicted"], b["predicted"])


def test_replanning_changes_plans_and_cached_equals_uncached():
    """Re-planning mid-episode: the cached decoder, with its context replayed under the new
    plan, plays exactly what re-encoding the whole history under that plan plays."""
    task = get_task("pointmaze-umaze-goal-dense")
    model = acting_model()
    icfg = InferenceConfig(mode="random", replan_every=7)
    kw = dict(envs=make_envs(task.make_env, 3), horizon=30, episodes=3, seed=5, icfg=icfg,
              record=True)
    cached = rollout(model, cache=True, **kw)
    uncached = rollout(model, cache=False, **kw)
    for a, b in zip(cached["episodes"], uncached["episodes"], strict=True):
        np.testing.assert_allclose(a.actions, b.actions, atol=1e-5)
    once = rollout(model, cache=True, **{**kw, "icfg": InferenceConfig(mode="random")})
    same_start = [a.actions[:7] for a in once["episodes"]]
    for a, b in zip(cached["episodes"], same_start, strict=True):
        np.testing.assert_allclose(a.actions[:7], b, atol=1e-6)  # the first plan is the same
    assert not np.allclose(np.stack([e.actions[7:] for e in cached["episodes"]]),
                           np.stack([e.actions[7:] for e in once["episodes"]]), atol=1e-3)


def test_episodes_that_end_early_stop_there_and_replay_exactly():
    """hopper falls under an untrained policy: each episode stops at its own terminal step,
    the others go on, and replaying the recorded actions gives the same return and length."""
    task = get_task("hopper-medium")
    env = task.make_env()
    torch.manual_seed(0)
    model = GACModel(ModelConfig(obs_dim=env.obs_dim, act_dim=env.act_dim, d_model=32,
                                 n_layers=1, context_steps=2, max_timestep=1000, prior="mlp"))
    with torch.no_grad():  # large actions, so that the hopper falls at varied steps
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(5.0)
    out = rollout(model, make_envs(task.make_env, 4), 300, 6, seed=3,
                  icfg=InferenceConfig(mode="random"), record=True)
    lengths = out["lengths"]
    assert (lengths < 300).all() and len(set(lengths.tolist())) > 1
    for k, episode in enumerate(out["episodes"]):
        assert episode.terminal and len(episode) == lengths[k]
        env.reset(seed=3 + k)
        total, done = 0.0, False
        for step, action in enumerate(episode.actions):
            assert not done, f"episode {k} went on after its terminal step {step}"
            _, reward, done, _, _ = env.step(action)
            total += reward
        assert done
        assert np.isclose(total, out["returns"][k])
