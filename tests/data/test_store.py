"""TrajectoryStore: construction, append, and the window sampler training relies on."""

from __future__ import annotations

import numpy as np
import pytest

from gac.data.store import DataError, Episode, TrajectoryStore

LENGTHS = (3, 8, 23, 60)


def episode(e: int, length: int, with_rewards: bool = True, terminal: bool = False) -> Episode:
    """Observation column 0 is the step index, column 1 the episode id: the sampler's output
    can then be checked against where it claims to come from (id + 1: padding is all zeros)."""
    t = np.arange(length, dtype=np.float32)
    obs = np.stack([t, np.full(length, e + 1, np.float32), np.sin(t)], axis=1)
    actions = np.stack([np.cos(t), t / 100], axis=1).astype(np.float32)
    rewards = (0.1 * t + e).astype(np.float32)
    return Episode(obs, actions, rewards if with_rewards else None, terminal,
                   float(rewards.astype(np.float64).sum()))


@pytest.fixture
def store() -> TrajectoryStore:
    return TrajectoryStore.from_episodes([episode(e, n) for e, n in enumerate(LENGTHS)],
                                         {"task": "toy"})


def test_from_episodes_layout(store):
    assert store.num_episodes == len(LENGTHS) and store.num_steps == sum(LENGTHS)
    np.testing.assert_array_equal(store.lengths, LENGTHS)
    np.testing.assert_array_equal(store.starts, np.cumsum((0, *LENGTHS[:-1])))
    ends = store.starts + store.lengths - 1
    assert store.timeouts[ends].all() and store.timeouts.sum() == len(LENGTHS)
    assert not store.terminals.any()
    for e, n in enumerate(LENGTHS):
        ep = store.episode(e)
        np.testing.assert_array_equal(ep.observations, episode(e, n).observations)
        assert ep.ret == pytest.approx(episode(e, n).ret)
    assert store.episode(-1).observations[0, 1] == len(LENGTHS)
    with pytest.raises(IndexError):
        store.episode(len(LENGTHS))
    s = store.summary()
    assert s["episodes"] == 4 and s["length_max"] == 60 and s["obs_dim"] == 3 and s["act_dim"] == 2


def test_from_episodes_rejects_bad_episodes():
    with pytest.raises(DataError, match="no episodes"):
        TrajectoryStore.from_episodes([])
    good = episode(0, 5)
    short_obs = Episode(good.observations[:4], good.actions, good.rewards, False, 0.0)
    with pytest.raises(DataError, match="episode 1.*same"):
        TrajectoryStore.from_episodes([good, short_obs])
    wide = Episode(np.zeros((5, 4), np.float32), good.actions, None, False, 0.0)
    with pytest.raises(DataError, match="episode 1: obs/act dims"):
        TrajectoryStore.from_episodes([good, wide])


def test_append_grows_the_store(store):
    before = store.num_steps
    store.append([episode(7, 9, terminal=True), episode(8, 4, with_rewards=False)])
    assert store.num_episodes == len(LENGTHS) + 2 and store.num_steps == before + 13
    assert store.starts[-2] == before and store.starts[-1] == before + 9
    assert store.terminals[before + 8] and store.timeouts[-1]
    np.testing.assert_array_equal(store.episode(-2).observations, episode(7, 9).observations)
    assert store.episode(-1).rewards is None  # known by its return only
    assert store.returns[-1] == pytest.approx(episode(8, 4).ret)
    assert np.isnan(store.rewards[-4:]).all() and not np.isnan(store.rewards[:-4]).any()
    store.append([])
    assert store.num_episodes == len(LENGTHS) + 2
    with pytest.raises(DataError, match="shape"):
        store.append([Episode(np.zeros((2, 5), np.float32), np.zeros((2, 2), np.float32), None,
                              False, 0.0)])


def test_append_rewards_to_a_return_only_store():
    store = TrajectoryStore.from_episodes([episode(0, 4, with_rewards=False)])
    assert store.rewards is None
    store.append([episode(1, 3)])
    assert np.isnan(store.rewards[:4]).all()
    np.testing.assert_allclose(store.rewards[4:], episode(1, 3).rewards)


def test_subset_keeps_episodes_and_metadata(store):
    sub = store.subset([3, 1])
    assert sub.metadata == store.metadata
    np.testing.assert_array_equal(sub.episode(0).observations, store.episode(3).observations)
    np.testing.assert_array_equal(sub.lengths, [60, 8])


def test_sample_windows_shapes_masks_burn_in_and_timesteps(store):
    rng = np.random.default_rng(0)
    n, window, burn_in = 500, 8, 5
    b = store.sample_windows(rng, n, window, burn_in)
    seq = window + burn_in
    assert b["obs"].shape == (n, seq, 3) and b["actions"].shape == (n, seq, 2)
    assert b["timesteps"].shape == b["loss_mask"].shape == (n, seq)
    assert b["traj_scale"].shape == b["returns"].shape == b["episode_index"].shape == (n,)
    for row in range(n):
        e = int(b["episode_index"][row])
        length = LENGTHS[e]
        obs, ts, mask = b["obs"][row], b["timesteps"][row], b["loss_mask"][row]
        real = np.flatnonzero((obs[:, 1] == e + 1) & (obs[:, 0] == ts))
        k = len(real)
        # Real steps are a contiguous prefix, consecutive in time; padding is all zeros.
        np.testing.assert_array_equal(real, np.arange(k))
        np.testing.assert_array_equal(np.diff(ts[:k]), 1)
        assert not obs[k:].any() and not ts[k:].any() and not mask[k:].any()
        s = int(store.starts[e])
        np.testing.assert_array_equal(b["actions"][row, :k], store.actions[s + ts[0]:s + ts[k - 1] + 1])
        # The mask covers a contiguous run of real steps, after up to burn_in history steps.
        scored = np.flatnonzero(mask)
        assert len(scored) >= 1 and np.all(np.diff(scored) == 1) and scored[-1] == k - 1
        assert scored[0] == min(burn_in, ts[scored[0]])
        assert len(scored) <= min(window, length)
        if length <= window:
            assert len(scored) == length
        expected_scale = 1.0 if length <= window else (length + window - 1) / window
        assert b["traj_scale"][row] == pytest.approx(expected_scale)
        assert b["returns"][row] == pytest.approx(store.returns[e])
        np.testing.assert_array_equal(b["s0"][row], store.observations[s])


def test_sample_windows_without_burn_in_starts_at_the_scored_step(store):
    b = store.sample_windows(np.random.default_rng(1), 200, 8, burn_in=0)
    first = b["loss_mask"].argmax(1)
    assert (first == 0).all()


def test_episode_sampling_is_length_weighted(store):
    idx = store.sample_episodes(np.random.default_rng(2), 40_000)
    freq = np.bincount(idx, minlength=len(LENGTHS)) / len(idx)
    np.testing.assert_allclose(freq, np.array(LENGTHS) / sum(LENGTHS), atol=0.01)


def _windows_one_row_at_a_time(store, rng, n, window, burn_in, weights):
    """The sampler as first written, one row at a time: the reference the batched one matches."""
    p = store.lengths.astype(np.float64) * (1.0 if weights is None else weights)
    eps = rng.choice(store.num_episodes, size=n, p=p / p.sum())
    seq = burn_in + window
    obs = np.zeros((n, seq, store.obs_dim), np.float32)
    tsteps = np.zeros((n, seq), np.int64)
    mask = np.zeros((n, seq), np.float32)
    scale = np.zeros(n, np.float32)
    for row, e in enumerate(eps):
        length = int(store.lengths[e])
        if length > window:
            start = int(rng.integers(-(window - 1), length))
            w0, w1 = max(start, 0), min(start + window, length)
            scale[row] = (length + window - 1) / window
        else:
            w0, w1, scale[row] = 0, length, 1.0
        h0, s = max(w0 - burn_in, 0), int(store.starts[e])
        obs[row, :w1 - h0] = store.observations[s + h0:s + w1]
        tsteps[row, :w1 - h0] = np.arange(h0, w1)
        mask[row, w0 - h0:w1 - h0] = 1.0
    return {"episode_index": eps, "obs": obs, "timesteps": tsteps, "loss_mask": mask,
            "traj_scale": scale}


@pytest.mark.parametrize("window,burn_in,weighted", [(8, 0, False), (4, 6, True), (70, 2, False)])
def test_batched_sampler_draws_what_the_row_by_row_one_drew(store, window, burn_in, weighted):
    """Same seed, same windows: the batched sampler (no per-row Python, no per-batch O(episodes)
    work) left training's random stream, and so every seeded run, unchanged."""
    weights = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    for seed in range(5):
        new = store.sample_windows(np.random.default_rng(seed), 64, window, burn_in, weights)
        ref = _windows_one_row_at_a_time(store, np.random.default_rng(seed), 64, window, burn_in,
                                         weights)
        for key, value in ref.items():
            np.testing.assert_array_equal(new[key], value, err_msg=key)
            assert new[key].dtype == value.dtype, key


def test_sampling_distribution_follows_appends_and_new_weights(store):
    store.sample_episodes(np.random.default_rng(0), 10)  # caches the distribution
    store.append([episode(9, 500)])
    idx = store.sample_episodes(np.random.default_rng(1), 20_000)
    assert (idx == 4).mean() == pytest.approx(500 / store.num_steps, abs=0.02)
    only_first = np.array([1.0, 0, 0, 0, 0])
    assert (store.sample_episodes(np.random.default_rng(2), 50, only_first) == 0).all()
    only_last = np.array([0, 0, 0, 0, 1.0])
    assert (store.sample_episodes(np.random.default_rng(2), 50, only_last) == 4).all()
    with pytest.raises(ValueError, match="weights"):
        store.sample_episodes(np.random.default_rng(3), 5, np.zeros(5))


def test_window_estimate_of_a_whole_episode_sum_is_unbiased(store):
    """The docstring's claim: traj_scale * (sum over scored steps) estimates the episode's sum."""
    window = 8
    b = store.sample_windows(np.random.default_rng(3), 60_000, window, burn_in=3)
    # A per-step quantity that grows along the episode, so clipped edge windows matter.
    per_step = 1.0 + b["obs"][..., 0] ** 1.5
    estimate = b["traj_scale"] * (per_step * b["loss_mask"]).sum(1)
    for e, length in enumerate(LENGTHS):
        rows = b["episode_index"] == e
        truth = float((1.0 + np.arange(length) ** 1.5).sum())
        if length <= window:  # whole episode every time: exact
            np.testing.assert_allclose(estimate[rows], truth, rtol=1e-5)
        else:
            assert estimate[rows].mean() == pytest.approx(truth, rel=0.03)


def test_obs_stats(store):
    mean, std = store.obs_stats()
    np.testing.assert_allclose(mean, store.observations.mean(0), rtol=1e-5)
    assert (std > 0).all() and mean.dtype == np.float32


def test_the_tail_of_added_episodes_round_trips(store):
    n = store.num_episodes
    assert store.tail(n) is None
    added = [episode(7, 9, with_rewards=False, terminal=True), episode(8, 4, with_rewards=False)]
    store.append(added)
    tail = store.tail(n)
    assert tail["starts"].tolist() == [0, 9] and len(tail["actions"]) == 13
    back = TrajectoryStore.episodes_from_tail(tail)
    assert [len(e) for e in back] == [9, 4] and [e.terminal for e in back] == [True, False]
    for e, a in zip(back, added, strict=True):
        np.testing.assert_array_equal(e.observations, a.observations)
        assert e.rewards is None and e.ret == pytest.approx(a.ret)


def test_sample_windows_of_given_episodes(store):
    eps = np.array([0, 0, 2, 1, 2])
    b = store.sample_windows(np.random.default_rng(3), len(eps), 6, burn_in=0, episodes=eps)
    assert b["episode_index"].tolist() == eps.tolist()
    for row, e in enumerate(eps):
        start, length = store.starts[e], store.lengths[e]
        steps = b["timesteps"][row][b["loss_mask"][row] > 0]
        assert len(steps) and steps.max() < length
        np.testing.assert_array_equal(b["obs"][row][b["loss_mask"][row] > 0],
                                      store.observations[start + steps])
