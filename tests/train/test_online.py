"""Offline-to-online: return-only labels, store and chains growing, resume, the delta-y rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gac.config import OnlineConfig, apply_overrides, preset
from gac.data.hdf5 import load_hdf5
from gac.tasks import get_task
from gac.train.offline import Trainer
from gac.train.online import DeltaYRule, OnlineRun, reference_return

TINY = ["model.d_model=32", "model.n_layers=1", "model.context_steps=4", "train.batch_size=8",
        "train.window=8", "train.warmup_steps=1", "train.steps=4", "train.log_every=2",
        "train.checkpoint_every=2", "online.env_steps=1200", "online.stages=2",
        "online.updates_per_stage=4", "online.eval_episodes=2", "online.n_envs=2",
        "online.explore_steps=3", "inference.n_starts=2", "inference.ascent_steps=2"]


def make_run(path, run_dir, extra=()):
    cfg = apply_overrides(preset("pointmaze-umaze-goal"), [*TINY, *extra])
    trainer = Trainer(cfg, load_hdf5(path), run_dir, return_scale=100.0)
    ref = (0.0, 100.0)
    return OnlineRun(trainer, get_task("pointmaze-umaze-goal"), run_dir, ref)


def test_stages_collect_return_only_episodes_and_grow_chains(tiny_maze_path, tmp_path):
    run = make_run(tiny_maze_path, tmp_path / "run")
    n0 = run.trainer.store.num_episodes
    records = run.run(progress=False, log=lambda *_: None)
    store = run.trainer.store
    assert [r["stage"] for r in records] == [0, 1, 2]
    # 1200 steps over 2 stages of 300-step episodes: 2 episodes per stage.
    assert store.num_episodes == n0 + 4
    assert len(run.trainer.chains) == store.num_episodes
    assert records[-1]["env_steps"] == 1200
    online_rewards = store.rewards[store.starts[n0]:]
    assert np.isnan(online_rewards).all()  # no step reward was ever recorded online
    for i in range(n0, store.num_episodes):
        assert store.episode(i).rewards is None
        assert len(store.episode(i)) == 300
    assert run.trainer.step == 2 * 4  # two refits of 4 updates (no offline updates here)


def test_killed_mid_stage_resumes_without_losing_episodes(tiny_maze_path, tmp_path):
    full = make_run(tiny_maze_path, tmp_path / "full")
    full.run(progress=False, log=lambda *_: None)

    part = make_run(tiny_maze_path, tmp_path / "part")
    part.records.append({"stage": 0, "env_steps": 0, **part.evaluate()})
    part.add(part.collect_group())  # one group of stage 1 collected, then "killed"
    part.save()
    collected = part.trainer.store.num_episodes
    del part

    resumed = make_run(tiny_maze_path, tmp_path / "part")
    resumed.load(tmp_path / "part" / "checkpoint.pt")
    assert resumed.trainer.store.num_episodes == collected
    assert resumed.stage_steps == 600 and resumed.phase == "collect"
    resumed.run(progress=False, log=lambda *_: None)
    assert resumed.trainer.store.num_episodes == full.trainer.store.num_episodes
    np.testing.assert_array_equal(resumed.trainer.store.returns, full.trainer.store.returns)
    assert torch.equal(resumed.trainer.chains.z, full.trainer.chains.z)
    for a, b in zip(resumed.trainer.model.parameters(), full.trainer.model.parameters(),
                    strict=True):
        assert torch.equal(a, b)


def test_no_exploration_uses_exploitation_plans(tiny_maze_path, tmp_path):
    run = make_run(tiny_maze_path, tmp_path / "run", ["online.exploration=false"])
    run.records.append({"stage": 0, "env_steps": 0, **run.evaluate()})
    run.collect_group()
    assert run.stage_explore == []


def test_automatic_delta_y_moves_in_the_right_direction():
    rule = DeltaYRule(OnlineConfig(kappa_init=1.0, kappa_factor=2.0, target_success=0.2))
    pool = np.array([0.0, 10.0])  # std 5
    assert rule.delta(pool) == pytest.approx(5.0)
    rule.update(np.array([12.0, 15.0, 11.0]), y_ref=10.0)  # everyone beat y_ref: be bolder
    assert rule.kappa == 2.0 and rule.delta(pool) == pytest.approx(10.0)
    rule.update(np.array([1.0, 2.0, 3.0, 4.0]), y_ref=10.0)  # nobody did: less optimism
    rule.update(np.array([1.0, 2.0, 3.0, 12.0, 4.0, 5.0]), y_ref=10.0)  # 1/6 < 1/5
    assert rule.kappa == 0.5
    fixed = DeltaYRule(OnlineConfig(delta_y=7.0))
    fixed.update(np.array([100.0]), y_ref=1.0)
    assert fixed.delta(pool) == 7.0


def test_online_share_mixes_the_batches(tiny_maze_path, tmp_path):
    run = make_run(tiny_maze_path, tmp_path / "run", ["online.online_share=0.5"])
    run.played = [0.0, 1.0]  # as if the offline policy had been evaluated
    run.add(run.collect_group())
    rng = np.random.default_rng(0)
    eps = run.trainer.store.sample_episodes(rng, 20_000, run.trainer.episode_weights)
    lengths = run.trainer.store.lengths[eps]
    online = eps >= run.n_offline
    # Each draw is one training window, so the share of draws is the share of trained steps.
    assert 0.45 < online.mean() < 0.55, online.mean()
    assert (lengths[online] == 300).all()
    with pytest.raises(ValueError, match="online_share"):
        make_run(tiny_maze_path, tmp_path / "bad", ["online.online_share=1.5"])


def test_collection_plays_the_plans_it_asks_for(tiny_maze_path, tmp_path, monkeypatch):
    import gac.collectors as collectors
    import gac.inference.explore as explore

    run = make_run(tiny_maze_path, tmp_path / "run", ["online.explore_share=0.5",
                                                      "online.collect_shards=1"])
    conditioned, planned = [], []
    real_conditioned, real_planner = explore.sample_conditioned, collectors.exploration_planner

    def spy_conditioned(model, s0, y_plus, *args, **kwargs):
        conditioned.append((len(s0), y_plus))
        return real_conditioned(model, s0, y_plus, *args, **kwargs)

    def spy_planner(*args, **kwargs):
        inner = real_planner(*args, **kwargs)

        def planner(s0, gen):
            z0 = inner(s0, gen)
            planned.append((s0.clone(), z0.clone()))
            return z0
        return planner

    monkeypatch.setattr(explore, "sample_conditioned", spy_conditioned)
    monkeypatch.setattr(collectors, "exploration_planner", spy_planner)
    played = np.array([3.0, 40.0, 90.0, 120.0])  # the offline policy's evaluation episodes
    run.played = played.tolist()
    episodes = run.collect_group()
    # y+ = y_ref + kappa * std, y_ref the 0.8 quantile of the played episodes' returns (nothing
    # collected yet), not of the offline trajectories.
    y_ref, y_plus = run.last_targets
    assert y_ref == pytest.approx(np.quantile(played, 0.8))
    assert y_plus == pytest.approx(y_ref + run.cfg.kappa_init * np.std(played))
    assert conditioned == [(1, y_plus)]  # one of the two episodes explores, with that y+
    (s0, z0), = planned
    # The episodes were played with those plans: their first actions are the plans' decodings.
    model = run.trainer.model.eval()
    first = model.act(model.start_episode(model.prior(z0)), s0, 0)
    np.testing.assert_allclose(np.stack([e.actions[0] for e in episodes]), first.numpy(),
                               atol=1e-6)
    np.testing.assert_array_equal(np.stack([e.observations[0] for e in episodes]), s0.numpy())


def test_reference_return_lives_on_the_episode_scale():
    from gac.data.store import Episode, TrajectoryStore

    def ep(ret: float, n: int) -> Episode:
        return Episode(np.zeros((n, 2), np.float32), np.zeros((n, 1), np.float32), None, False, ret)

    # Offline: short segments with small returns; online: full episodes with large ones.
    store = TrajectoryStore.from_episodes([ep(1.0, 5), ep(2.0, 5), ep(9.0, 5)])
    played = np.array([100.0, 200.0])
    y_ref, pool = reference_return(store, 3, 0.5, played)
    assert y_ref == 150.0 and pool.tolist() == [100.0, 200.0]
    y_ref, pool = reference_return(store, 3, 0.5, played, pool="data")  # the earlier rule
    assert y_ref == 2.0 and pool.tolist() == [1.0, 2.0, 9.0]
    store.append([ep(300.0, 20)])  # one collected episode
    y_ref, pool = reference_return(store, 3, 1.0, played)
    assert y_ref == 300.0 and sorted(pool.tolist()) == [100.0, 200.0, 300.0]
    assert reference_return(store, 3, 1.0, played, pool="data")[1].tolist() == [300.0]
    with pytest.raises(ValueError, match="played episodes"):
        reference_return(TrajectoryStore.from_episodes([ep(1.0, 5)]), 1, 0.8, None)
    with pytest.raises(ValueError, match="ref_pool"):
        reference_return(store, 3, 0.8, played, pool="segments")


def test_first_stage_targets_come_from_the_offline_policys_episodes(tiny_maze_path, tmp_path):
    run = make_run(tiny_maze_path, tmp_path / "run", ["online.stages=1", "online.env_steps=600"])
    records = run.run(progress=False, log=lambda *_: None)
    # Stage 0's evaluation episodes (2) and the stage's evaluation (2) were recorded as played.
    assert len(run.played) == 4
    first = np.array(run.played[:2])
    assert records[0]["return"] == pytest.approx(first.mean())
    assert records[1]["y_ref"] == pytest.approx(np.quantile(first, 0.8))
    assert records[1]["y_plus"] == pytest.approx(
        records[1]["y_ref"] + run.cfg.kappa_init * np.std(first))
    assert np.isfinite(records[1]["explore_return"])


def test_collection_replans_exploring_episodes_toward_the_missing_return(tiny_maze_path, tmp_path,
                                                                         monkeypatch):
    import gac.inference.explore as explore

    run = make_run(tiny_maze_path, tmp_path / "run", ["inference.replan_every=100",
                                                      "online.explore_share=0.5",
                                                      "online.collect_shards=1"])
    run.played = [10.0, 20.0]
    targets, real = [], explore.sample_conditioned

    def spy(model, s0, y, *args, **kwargs):
        targets.append(torch.as_tensor(y, dtype=torch.float32).reshape(-1).clone())
        return real(model, s0, y, *args, **kwargs)

    monkeypatch.setattr(explore, "sample_conditioned", spy)
    episodes = run.collect_group()
    _, y_plus = run.last_targets
    # 300 steps, a new plan every 100: at t = 0, 100 and 200, one exploring episode each time.
    assert len(targets) == 3 and all(len(t) == 1 for t in targets)
    assert targets[0].item() == pytest.approx(y_plus, rel=1e-6)
    assert all(len(e) == 300 for e in episodes)


def test_exploration_planner_asks_for_the_return_still_missing(tiny_maze_path, tmp_path,
                                                              monkeypatch):
    import gac.inference.explore as explore

    run = make_run(tiny_maze_path, tmp_path / "run")
    seen, real = [], explore.sample_conditioned

    def spy(model, s0, y, *args, **kwargs):
        seen.append(y)
        return real(model, s0, y, *args, **kwargs)

    monkeypatch.setattr(explore, "sample_conditioned", spy)
    planner = explore.exploration_planner(run.trainer.model, run.trainer.cfg.inference, run.cfg,
                                          y_plus=50.0, n_explore=2, bank=run.trainer.plan_bank)
    s0 = torch.as_tensor(run.trainer.store.observations[:3])
    gen = torch.Generator().manual_seed(0)
    assert planner(s0, gen).shape == (3, *run.trainer.model.latent_shape)
    planner(s0, gen, achieved=torch.tensor([10.0, 45.0, 3.0], dtype=torch.float64))
    assert seen[0] == 50.0
    torch.testing.assert_close(seen[1], torch.tensor([40.0, 5.0]))  # only the 2 explorers


def test_exploration_can_start_from_the_modes_own_plans(tiny_maze_path, tmp_path):
    from gac.inference import plan
    from gac.inference.explore import exploration_planner

    run = make_run(tiny_maze_path, tmp_path / "run", ["online.explore_from=plan",
                                                      "online.explore_steps=0"])
    model, icfg = run.trainer.model, run.trainer.cfg.inference
    s0 = torch.as_tensor(run.trainer.store.observations[:3])
    planner = exploration_planner(model, icfg, run.cfg, 50.0, 3, run.trainer.plan_bank)
    # No Langevin step: the explorers' chains stay where they start, at the mode's plans.
    mine = plan(model, s0, icfg, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(planner(s0, torch.Generator().manual_seed(1)), mine)
    prior = exploration_planner(model, icfg, replace(run.cfg, explore_from="prior"), 50.0, 3,
                                run.trainer.plan_bank)  # chains from prior samples
    assert not torch.allclose(prior(s0, torch.Generator().manual_seed(1)), mine)


def test_an_offline_plan_bank_offers_the_offline_plans_only(tiny_maze_path, tmp_path):
    from gac.runs import load_policy

    run = make_run(tiny_maze_path, tmp_path / "run", ["online.plan_bank=offline"])
    n0 = run.trainer.store.num_episodes
    run.run(progress=False, log=lambda *_: None)
    assert run.trainer.store.num_episodes > n0  # the collected episodes train the model...
    bank = run.trainer.plan_bank
    assert len(bank.returns) == len(bank.z0) == len(bank.starts) == n0  # ...but are not offered
    torch.testing.assert_close(bank.z0, run.trainer.chains.z[:n0])
    saved = load_policy(tmp_path / "run" / "checkpoint.pt").bank
    assert len(saved.returns) == n0 and len(saved.lengths) == n0
    # The default offers every episode's plan.
    full = make_run(tiny_maze_path, tmp_path / "full")
    full.run(progress=False, log=lambda *_: None)
    assert len(full.trainer.plan_bank.returns) == full.trainer.store.num_episodes > n0


def test_fixed_offline_plans_stay_put_while_the_model_refits(tiny_maze_path, tmp_path):
    run = make_run(tiny_maze_path, tmp_path / "run",
                   ["online.offline_plans=fixed", "online.online_share=0.5"])
    n0 = run.trainer.store.num_episodes
    before = run.trainer.chains.z.clone()
    weights = [p.detach().clone() for p in run.trainer.model.parameters()]
    run.played = [0.0, 10.0]  # y_ref's pool: as if the offline policy had been evaluated
    run.add(run.collect_group())
    collected = run.trainer.chains.z[n0:].clone()
    run.trainer.train(steps=run.trainer.step + 4, progress=False)
    torch.testing.assert_close(run.trainer.chains.z[:n0], before, rtol=0, atol=0)
    assert not torch.allclose(run.trainer.chains.z[n0:], collected)  # the new plans move
    assert any(not torch.equal(w, p) for w, p in zip(weights, run.trainer.model.parameters(),
                                                      strict=True))  # and the model refits
    # The default moves the offline chains too.
    moved = make_run(tiny_maze_path, tmp_path / "move", ["online.online_share=0.5"])
    moved.played = [0.0, 10.0]
    moved.add(moved.collect_group())
    moved.trainer.train(steps=moved.trainer.step + 4, progress=False)
    assert not torch.allclose(moved.trainer.chains.z[:n0], before)


def test_refits_run_at_the_online_learning_rate(tiny_maze_path, tmp_path):
    run = make_run(tiny_maze_path, tmp_path / "run", ["online.refit_lr_factor=0.01"])
    lr = run.trainer.cfg.train.lr
    run.trainer.train(progress=False)  # offline: the schedule (its warm-up and cosine)
    run.run(progress=False, log=lambda *_: None)
    assert run.trainer.step > run.trainer.cfg.train.steps
    assert run.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * lr)
    default = make_run(tiny_maze_path, tmp_path / "default")
    default.trainer.train(progress=False)
    default.run(progress=False, log=lambda *_: None)
    assert default.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr)


def test_online_stages_play_the_averaged_weights(tiny_maze_path, tmp_path, monkeypatch):
    """With train.ema_decay the stages evaluate and collect with the averaged weights, which
    keep averaging through the refits; the online checkpoint carries them."""
    import gac.train.online as online

    run = make_run(tiny_maze_path, tmp_path / "run", ["train.ema_decay=0.9"])
    played = []
    evaluate, collect = online.evaluate, run.collector.collect
    monkeypatch.setattr(online, "evaluate",
                        lambda model, *a, **k: (played.append(model), evaluate(model, *a, **k))[1])
    monkeypatch.setattr(run.collector, "collect",
                        lambda model, *a, **k: (played.append(model), collect(model, *a, **k))[1])
    before = [p.clone() for p in run.trainer.averaged.parameters()]
    run.run(progress=False, log=lambda *_: None)
    assert len(played) >= 4 and all(m is run.trainer.averaged for m in played)
    assert any(not torch.equal(a, b) for a, b in zip(before, run.trainer.averaged.parameters(),
                                                     strict=True))
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["averaged_model"]
    for name, value in run.trainer.averaged.state_dict().items():
        assert torch.equal(saved[name], value)
