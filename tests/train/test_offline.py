"""Offline training: determinism, exact resume, checkpoint validation, config checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gac.config import apply_overrides, preset
from gac.data.hdf5 import load_hdf5
from gac.data.store import DataError
from gac.inference import plan
from gac.runs import evaluate_checkpoint, load_policy
from gac.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gac.train.offline import Trainer

TINY = ["model.d_model=32", "model.n_layers=2", "model.context_steps=4", "train.batch_size=8",
        "train.window=8", "train.warmup_steps=2", "train.steps=6", "train.log_every=2",
        "train.checkpoint_every=3"]


def make(store, run_dir=None, extra=()):
    cfg = apply_overrides(preset("pointmaze-umaze-goal"), [*TINY, *extra])
    return Trainer(cfg, store, run_dir, return_scale=100.0)


@pytest.fixture(scope="module")
def store(tiny_maze_path):
    return load_hdf5(tiny_maze_path)


def params(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def test_same_seed_same_numbers(store):
    a, b = make(store), make(store)
    la = [a.update()["loss"] for _ in range(3)]
    lb = [b.update()["loss"] for _ in range(3)]
    assert la == lb
    assert torch.equal(params(a), params(b))
    c = make(store, extra=["train.seed=1"])
    assert [c.update()["loss"] for _ in range(3)] != la


def test_training_runs_on_one_thread_unless_told_otherwise(store):
    """With torch's default threads (2 on a 2-core CPU) two runs of one seed drift apart in
    the float rounding; the default trains on one thread, where they agree (config.py)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        make(store)
        assert torch.get_num_threads() == 1
        make(store, extra=["train.threads=2"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_resume_equals_uninterrupted(store, tmp_path):
    full = make(store, tmp_path / "full")
    full.train(progress=False)

    part = make(store, tmp_path / "part")
    part.train(steps=3, progress=False)  # checkpoint_every=3: a checkpoint at step 3
    del part
    resumed = make(store, tmp_path / "part")
    resumed.load(tmp_path / "part" / "checkpoint.pt")
    assert resumed.step == 3
    resumed.train(progress=False)
    assert resumed.step == full.step == 6
    assert torch.equal(params(resumed), params(full))
    assert torch.equal(resumed.chains.z, full.chains.z)
    # Logged windows that do not straddle the interruption are identical.
    by_step = {h["step"]: h["loss"] for h in full.history}
    for h in resumed.history:
        if h["step"] in (2, 6):
            assert h["loss"] == by_step[h["step"]]
    # The CSV log of the resumed run holds every logged step once (3: where the first part ended).
    rows = (tmp_path / "part" / "metrics.csv").read_text().strip().splitlines()
    assert [float(r.split(",")[0]) for r in rows[1:]] == [2, 3, 4, 6]


def test_langevin_moves_the_chains_of_the_sampled_episodes_only(store):
    t = make(store)
    before = t.chains.z.clone()
    drawn, batch = set(), t.batch

    def spy():
        b = batch()
        drawn.update(b["episode_index"].tolist())
        return b

    t.batch = spy
    t.update()
    moved = {i for i in range(store.num_episodes) if not torch.equal(before[i], t.chains.z[i])}
    assert drawn and moved == drawn
    assert t.plan_bank.z0 is t.chains.z  # the plans elite inference reads moved too


def test_chains_without_noise_descend_the_energy(store):
    # Without noise a chain's move depends only on its state and its window, not on the
    # Langevin generator: two trainers whose generators differ move the chains alike.
    quiet = ["train.langevin_noise=0"]
    a, b = make(store, extra=quiet), make(store, extra=quiet)
    b.gen.manual_seed(12345)
    b.chains.z = a.chains.z.clone()
    before = a.chains.z.clone()
    a.update(), b.update()
    assert not torch.equal(before, a.chains.z) and torch.equal(a.chains.z, b.chains.z)
    noisy = make(store)
    noisy.gen.manual_seed(12345)
    noisy.chains.z = before.clone()
    noisy.update()
    assert not torch.equal(noisy.chains.z, a.chains.z)


def test_checkpoint_errors(store, tmp_path):
    t = make(store, tmp_path / "run")
    path = t.save(tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="pointmaze-medium-goal"):
        load_checkpoint(path, task="pointmaze-medium-goal")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(broken)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="not a gac checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    wider = make(store, extra=["model.d_model=48"])
    with pytest.raises(CheckpointError, match="model config differs"):
        wider.load(path)


def test_config_that_does_not_fit_the_data(store):
    with pytest.raises(DataError, match="max_timestep"):
        make(store, extra=["model.max_timestep=10"])
    with pytest.raises(DataError, match="obs_dim"):
        make(store, extra=["model.obs_dim=3"])


def test_overrides_are_checked():
    cfg = preset("pointmaze-umaze-goal")
    with pytest.raises(ValueError, match="no field"):
        apply_overrides(cfg, ["train.nope=1"])
    with pytest.raises(ValueError, match="SECTION.FIELD=VALUE"):
        apply_overrides(cfg, ["lr=1"])
    with pytest.raises(ValueError, match="cannot parse"):
        apply_overrides(cfg, ["train.steps=many"])
    assert apply_overrides(cfg, ["model.timestep_embedding=false"]).model.timestep_embedding is False


def test_checkpoints_carry_the_plans_of_the_training_episodes(store, tmp_path):
    t = make(store, tmp_path / "run")
    t.update()  # chains move in place: the trainer's bank follows them
    bank = t.plan_bank
    assert bank.z0 is t.chains.z and np.array_equal(bank.returns, store.returns)
    saved = load_policy(t.save(tmp_path / "run" / "checkpoint.pt")).bank
    torch.testing.assert_close(saved.z0, t.chains.z)
    assert np.array_equal(saved.returns, store.returns)
    first = store.observations[store.starts]
    assert np.array_equal(bank.starts.numpy(), first) and np.array_equal(saved.starts.numpy(), first)
    # and local plans come from them: with one neighbour (the least share), each state's nearest
    # episode start gives that episode's plan
    local = replace(t.cfg.inference, mode="local", local_share=1e-9)
    picked = plan(t.model, torch.as_tensor(first[:3]), local, bank=saved)
    torch.testing.assert_close(picked, saved.z0[:3])
    # Last observations and lengths, for stitched values; older checkpoints lack them.
    last = store.observations[store.starts + store.lengths - 1]
    assert np.array_equal(saved.ends.numpy(), last) and np.array_equal(bank.ends.numpy(), last)
    assert np.array_equal(saved.lengths, store.lengths)
    stitch = replace(t.cfg.inference, mode="stitch")
    assert plan(t.model, torch.as_tensor(first[:3]), stitch, bank=saved).shape == saved.z0[:3].shape
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    del state["episode_last_obs"]
    model, cfg, _, bank = load_policy(save_checkpoint(state, tmp_path / "no-ends.pt"))
    with pytest.raises(ValueError, match="last observations and lengths"):
        plan(model, torch.zeros(2, store.obs_dim), stitch, bank=bank)
    # A checkpoint written before first observations were stored plays every mode but local.
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    del state["episode_first_obs"]
    model, cfg, _, bank = load_policy(save_checkpoint(state, tmp_path / "older.pt"))
    plan(model, torch.zeros(2, store.obs_dim), replace(cfg.inference, mode="elite"), bank=bank)
    with pytest.raises(ValueError, match="first observations"):
        plan(model, torch.zeros(2, store.obs_dim), local, bank=bank)
    # A checkpoint written before returns were stored loads, but cannot play elite plans.
    del state["episode_returns"]
    old = save_checkpoint(state, tmp_path / "old.pt")
    model, cfg, _, bank = load_policy(old)
    assert bank is None
    with pytest.raises(ValueError, match="older checkpoints do not: retrain"):
        plan(model, torch.zeros(2, store.obs_dim), replace(cfg.inference, mode="elite"), bank=bank)


def test_added_episodes_get_chains_and_their_share_of_the_steps(tiny_maze_path):
    t = make(load_hdf5(tiny_maze_path))
    n, offline_steps = t.store.num_episodes, t.store.num_steps
    new = [t.store.episode(i) for i in range(3)]
    t.add_episodes(new)
    assert len(t.chains) == t.store.num_episodes == n + 3 and t.episode_weights is None
    t.add_episodes(new[:1], share=0.5)
    w = t.episode_weights
    assert np.all(w[:n] == 1.0)
    # Weighted by length, the added episodes make up half of the trained steps.
    assert (w[n:] * t.store.lengths[n:]).sum() == pytest.approx(offline_steps)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        t.add_episodes(new[:1], share=1.0)


def test_the_checkpoint_hook_replaces_the_default_checkpoint(store, tmp_path):
    t = make(store, tmp_path / "run")
    calls = []
    t.train(steps=6, progress=False, on_checkpoint=lambda: calls.append(t.step))
    assert calls == [3, 6] and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_plan_bottleneck_trains_and_plans(store, tmp_path):
    t = make(store, tmp_path / "run", extra=["model.plan_dim=5"])
    assert t.chains.z.shape == (store.num_episodes, 1, 5)
    t.train(progress=False)
    policy = load_policy(tmp_path / "run" / "checkpoint.pt")
    s0 = torch.as_tensor(store.observations[store.starts[:3]])
    for mode in ("exploit", "elite", "local"):
        icfg = replace(t.cfg.inference, mode=mode)
        assert plan(policy.model, s0, icfg, bank=policy.bank).shape == (3, 1, 5), mode


@pytest.mark.parametrize("sets, match", [(["model.plan_dim=4", "model.prior=unet"], "prior=mlp"),
                                         (["model.plan_dim=-1"], "plan_dim")])
def test_bad_plan_bottlenecks_are_refused(store, sets, match):
    with pytest.raises(ValueError, match=match):
        make(store, extra=sets)


def test_a_fresh_parameter_window_is_another_window_of_the_same_trajectories(store):
    t = make(store, extra=["train.param_window=fresh", "train.window=4"])
    calls, batch = [], t.batch

    def spy(episodes=None):
        b = batch(episodes)
        calls.append((episodes, b))
        return b

    t.batch = spy
    before = t.chains.z.clone()
    t.update()
    assert len(calls) == 2 and calls[0][0] is None
    chain_batch, param_batch = calls[0][1], calls[1][1]
    assert torch.equal(param_batch["episode_index"], chain_batch["episode_index"])
    assert not torch.equal(param_batch["obs"], chain_batch["obs"])  # other windows
    moved = {i for i in range(store.num_episodes) if not torch.equal(before[i], t.chains.z[i])}
    assert moved == set(chain_batch["episode_index"].tolist())
    # Deterministic for a seed, like the default scheme.
    a, b = (make(store, extra=["train.param_window=fresh"]) for _ in range(2))
    assert [a.update()["loss"] for _ in range(2)] == [b.update()["loss"] for _ in range(2)]


def test_a_fresh_parameter_window_needs_the_exact_scheme(store):
    with pytest.raises(ValueError, match="chain_grad=exact"):
        make(store, extra=["train.param_window=fresh", "train.chain_grad=shared"])


def test_an_end_head_models_where_each_trajectory_ends(store, tmp_path):
    """model.end_sigma > 0: p(s_T | z, s0) joins the return in the posterior and the loss."""
    plain, ended = make(store), make(store, tmp_path / "run", extra=["model.end_sigma=0.2"])
    assert plain.model.end_head is None and ended.model.end_head is not None
    batch = ended.batch()
    last = store.starts + store.lengths - 1
    np.testing.assert_array_equal(batch["s_end"].numpy(),
                                  store.observations[last[batch["episode_index"].numpy()]])
    z = ended.model.prior(ended.chains.get(batch["episode_index"]))
    m = ended.model
    end = m.end_head(z, m.normalise_obs(batch["s0"]))
    expected = m.return_nll(z, batch["s0"], batch["returns"]) + \
        (end - m.normalise_obs(batch["s_end"])).pow(2).sum(-1) / (2 * 0.2**2)
    torch.testing.assert_close(m.outcome_nll(z, batch), expected)
    torch.testing.assert_close(plain.model.outcome_nll(z, batch),
                               plain.model.return_nll(z, batch["s0"], batch["returns"]))
    # It trains: the end head's weights move, the loss includes its NLL, and the checkpoint
    # loads with the head.
    before = [p.detach().clone() for p in m.end_head.parameters()]
    ended.train(progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.end_head.parameters(), strict=True))
    policy = load_policy(tmp_path / "run" / "checkpoint.pt")
    assert policy.model.end_head is not None


def test_the_end_head_moves_the_chains(store):
    """The same seed with and without an end head: the same weights and chains before the
    first update (the head is built last), other chains after it."""
    plain, ended = make(store), make(store, extra=["model.end_sigma=0.2"])
    for name, p in plain.model.named_parameters():
        torch.testing.assert_close(p, dict(ended.model.named_parameters())[name], msg=name)
    assert torch.equal(plain.chains.z, ended.chains.z)
    plain.update()
    ended.update()
    assert not torch.allclose(plain.chains.z, ended.chains.z)


def test_a_negative_end_sigma_is_refused(store):
    with pytest.raises(ValueError, match="end_sigma"):
        make(store, extra=["model.end_sigma=-1"])


def test_averaged_weights_follow_training_without_changing_it(store, tmp_path):
    """train.ema_decay keeps a moving average of the weights: training itself is that of a run
    without it, the average lies between the start and the trained weights, it survives a
    resume exactly, and evaluation plays it unless inference.weights=trained."""
    plain = make(store)
    plain.train(progress=False)
    run = tmp_path / "ema"
    ema = make(store, run, extra=["train.ema_decay=0.9"])
    start = torch.cat([p.detach().flatten() for p in ema.averaged.parameters()])
    ema.train(progress=False)
    assert torch.equal(params(ema), params(plain))  # the average does not feed back
    assert torch.equal(ema.chains.z, plain.chains.z)
    averaged = torch.cat([p.detach().flatten() for p in ema.averaged.parameters()])
    assert not torch.equal(averaged, params(ema)) and not torch.equal(averaged, start)
    # d = min(0.9, (1 + n) / (10 + n)): recompute the average from the first update's weights on
    first = make(store, extra=["train.ema_decay=0.9"])
    first.update()
    assert torch.allclose(torch.cat([p.flatten() for p in first.averaged.parameters()]),
                          0.1 * start + 0.9 * params(first))  # n = 0: d = 0.1
    assert ema.acting_model is ema.averaged
    trained_plays = make(store, extra=["train.ema_decay=0.9", "inference.weights=trained"])
    assert trained_plays.acting_model is trained_plays.model
    # A resumed run continues the same average.
    part = make(store, tmp_path / "part", extra=["train.ema_decay=0.9"])
    part.train(steps=3, progress=False)
    resumed = make(store, tmp_path / "part", extra=["train.ema_decay=0.9"])
    resumed.load(tmp_path / "part" / "checkpoint.pt")
    resumed.train(progress=False)
    assert torch.equal(torch.cat([p.flatten() for p in resumed.averaged.parameters()]), averaged)
    # The checkpoint plays the average by default, the trained weights on request.
    ckpt = run / "checkpoint.pt"
    played = torch.cat([p.flatten() for p in load_policy(ckpt).model.parameters()])
    assert torch.equal(played, averaged)
    trained = load_policy(ckpt, weights="trained").model
    assert torch.equal(torch.cat([p.flatten() for p in trained.parameters()]), params(ema))
    with pytest.raises(ValueError, match="expected one of averaged, trained"):
        load_policy(ckpt, weights="ema")
    # A config the checkpoint cannot have been written with names the file, also where the
    # evaluation reads it to choose the weights.
    state = load_checkpoint(ckpt)
    state["config"]["train"]["bogus"] = 1
    bad = save_checkpoint(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt: incomplete or damaged"):
        evaluate_checkpoint(bad, 1, [0], progress=False)
    with pytest.raises(ValueError, match="ema_decay"):
        make(store, extra=["train.ema_decay=1"])


def test_fine_tuning_a_checkpoint_without_an_average_starts_one_at_its_weights(store, tmp_path):
    plain = make(store, tmp_path / "plain")
    plain.train(progress=False)
    tuned = make(store, tmp_path / "tuned", extra=["train.ema_decay=0.99"])
    tuned.load(tmp_path / "plain" / "checkpoint.pt", resumable=None)
    for a, b in zip(tuned.averaged.parameters(), plain.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "averaged_model" not in load_checkpoint(tmp_path / "plain" / "checkpoint.pt")
