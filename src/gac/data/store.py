"""The trajectory store: one in-memory dataset of episodes, used by every part of gac.

Steps of all episodes are concatenated in flat arrays (the D4RL layout); ``starts`` gives each
episode's first step. Per-episode returns are kept separately so that episodes collected online,
labelled with their total return only, need no step rewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DataError(ValueError):
    """A dataset that cannot be used, with the file/field/problem named in the message."""


class DataWarning(UserWarning):
    """Data that loads but looks wrong (actions the policy cannot reach, one-step episodes)."""


@dataclass
class Episode:
    observations: np.ndarray  # (T, obs_dim)
    actions: np.ndarray  # (T, act_dim)
    rewards: np.ndarray | None  # (T,) or None when only the return is known
    terminal: bool  # ended in a true terminal state (not a time limit)
    ret: float  # total return

    def __len__(self) -> int:
        return len(self.actions)


@dataclass
class TrajectoryStore:
    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray | None  # (N,) float32; NaN inside episodes known by return only
    terminals: np.ndarray  # (N,) bool
    timeouts: np.ndarray  # (N,) bool
    starts: np.ndarray  # (E,) int64, first step of each episode
    returns: np.ndarray  # (E,) float64, total return of each episode
    metadata: dict[str, Any] = field(default_factory=dict)
    _sampling: tuple | None = field(default=None, init=False, repr=False, compare=False)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_episodes(cls, episodes: list[Episode], metadata: dict[str, Any] | None = None
                      ) -> TrajectoryStore:
        if not episodes:
            raise DataError("no episodes: a dataset needs at least one episode")
        lengths = np.array([len(e) for e in episodes], dtype=np.int64)
        if (lengths == 0).any():
            raise DataError(f"episode {int(np.argmin(lengths))} is empty")
        first = episodes[0]
        for i, e in enumerate(episodes):
            # Mismatched lengths would concatenate silently into misaligned steps.
            if e.observations.ndim != 2 or e.actions.ndim != 2 or len(e.observations) != len(e) \
                    or (e.rewards is not None and e.rewards.shape != (len(e),)):
                raise DataError(
                    f"episode {i}: observations {e.observations.shape}, actions "
                    f"{e.actions.shape}, rewards {None if e.rewards is None else e.rewards.shape} "
                    f"do not describe the same (T, dim) steps")
            if e.observations.shape[1] != first.observations.shape[1] or \
                    e.actions.shape[1] != first.actions.shape[1]:
                raise DataError(f"episode {i}: obs/act dims {e.observations.shape[1]}/"
                                f"{e.actions.shape[1]} differ from episode 0's "
                                f"{first.observations.shape[1]}/{first.actions.shape[1]}")
        has_rewards = [e.rewards is not None for e in episodes]
        rewards = None
        if any(has_rewards):
            rewards = np.concatenate([
                e.rewards.astype(np.float32) if e.rewards is not None
                else np.full(len(e), np.nan, np.float32) for e in episodes])
        terminals = np.zeros(lengths.sum(), dtype=bool)
        timeouts = np.zeros(lengths.sum(), dtype=bool)
        ends = np.cumsum(lengths) - 1
        for end, e in zip(ends, episodes, strict=True):
            (terminals if e.terminal else timeouts)[end] = True
        return cls(
            observations=np.concatenate([e.observations for e in episodes]).astype(np.float32),
            actions=np.concatenate([e.actions for e in episodes]).astype(np.float32),
            rewards=rewards,
            terminals=terminals,
            timeouts=timeouts,
            starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            returns=np.array([e.ret for e in episodes], dtype=np.float64),
            metadata=dict(metadata or {}),
        )

    def append(self, episodes: list[Episode]) -> None:
        """Add episodes at the end (the online stages grow the store this way)."""
        if not episodes:
            return
        new = TrajectoryStore.from_episodes(episodes)
        if new.observations.shape[1:] != self.observations.shape[1:] or \
                new.actions.shape[1:] != self.actions.shape[1:]:
            raise DataError(
                f"appended episodes have obs/act shape {new.observations.shape[1:]}/"
                f"{new.actions.shape[1:]}, store has {self.observations.shape[1:]}/"
                f"{self.actions.shape[1:]}")
        offset = self.num_steps
        if self.rewards is None and new.rewards is not None:
            self.rewards = np.full(offset, np.nan, np.float32)
        if self.rewards is not None:
            extra = new.rewards if new.rewards is not None else np.full(new.num_steps, np.nan,
                                                                        np.float32)
            self.rewards = np.concatenate([self.rewards, extra])
        self.observations = np.concatenate([self.observations, new.observations])
        self.actions = np.concatenate([self.actions, new.actions])
        self.terminals = np.concatenate([self.terminals, new.terminals])
        self.timeouts = np.concatenate([self.timeouts, new.timeouts])
        self.starts = np.concatenate([self.starts, new.starts + offset])
        self.returns = np.concatenate([self.returns, new.returns])

    # ----------------------------------------------------------------- views
    @property
    def num_episodes(self) -> int:
        return len(self.starts)

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.append(self.starts, self.num_steps))

    def episode(self, i: int) -> Episode:
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range (store has {self.num_episodes})")
        i %= self.num_episodes
        a, b = int(self.starts[i]), int(self.starts[i] + self.lengths[i])
        rewards = None
        if self.rewards is not None and not np.isnan(self.rewards[a:b]).any():
            rewards = self.rewards[a:b]
        return Episode(self.observations[a:b], self.actions[a:b], rewards,
                       bool(self.terminals[b - 1]), float(self.returns[i]))

    def tail(self, first: int) -> dict[str, np.ndarray] | None:
        """The episodes from index ``first`` on as flat arrays (``starts`` relative to the
        first of them), or None when there are none: how a checkpoint carries the episodes an
        online run added. ``episodes_from_tail`` turns them back into episodes."""
        if self.num_episodes <= first:
            return None
        a = int(self.starts[first])
        return {"observations": self.observations[a:], "actions": self.actions[a:],
                "starts": self.starts[first:] - a, "returns": self.returns[first:],
                "terminals": self.terminals[a:], "timeouts": self.timeouts[a:]}

    @staticmethod
    def episodes_from_tail(arrays: dict[str, np.ndarray]) -> list[Episode]:
        """The episodes of ``tail``'s arrays, labelled with their returns only."""
        starts = arrays["starts"]
        ends = np.append(starts[1:], len(arrays["actions"]))
        return [Episode(arrays["observations"][a:b], arrays["actions"][a:b], None,
                        bool(arrays["terminals"][b - 1]), float(r))
                for a, b, r in zip(starts, ends, arrays["returns"], strict=True)]

    def subset(self, idx: np.ndarray | list[int]) -> TrajectoryStore:
        return TrajectoryStore.from_episodes([self.episode(int(i)) for i in idx], self.metadata)

    # ----------------------------------------------------------------- statistics
    def obs_stats(self, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of observations over all steps (the normalisation training uses)."""
        return (self.observations.mean(0).astype(np.float32),
                (self.observations.std(0) + eps).astype(np.float32))

    def summary(self) -> dict[str, Any]:
        lengths, rets = self.lengths, self.returns
        return {
            "episodes": self.num_episodes,
            "steps": self.num_steps,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "length_min": int(lengths.min()),
            "length_mean": float(lengths.mean()),
            "length_max": int(lengths.max()),
            "return_min": float(rets.min()),
            "return_mean": float(rets.mean()),
            "return_median": float(np.median(rets)),
            "return_max": float(rets.max()),
            "terminal_episodes": int(self.terminals.sum()),
        }

    # ----------------------------------------------------------------- sampling
    def _sampling_cdf(self, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(episode lengths, cumulative sampling distribution), computed once per store layout
        and weights: sampling a batch must not cost O(episodes). The layout is known by the
        ``starts`` array and the weights by their array object (``append`` replaces arrays, it
        does not modify them; pass new weights as a new array)."""
        cached = self._sampling
        if cached is None or cached[0] is not self.starts or cached[1] is not weights or \
                cached[2] != self.num_steps:
            lengths = self.lengths
            p = lengths.astype(np.float64)
            if weights is not None:
                p = p * weights
            if not (np.isfinite(p).all() and (p >= 0).all() and p.sum() > 0):
                raise ValueError("episode sampling weights must be finite, non-negative and "
                                 "not all zero")
            cdf = (p / p.sum()).cumsum()
            cdf /= cdf[-1]
            self._sampling = cached = (self.starts, weights, self.num_steps, lengths, cdf)
        return cached[3], cached[4]

    def sample_episodes(self, rng: np.random.Generator, n: int,
                        weights: np.ndarray | None = None) -> np.ndarray:
        """Episode indices drawn with replacement, with probability proportional to length
        (times an optional per-episode weight).

        Length weighting makes every *step* equally likely to be trained on (LPT's choice).
        The draws are those of ``rng.choice(num_episodes, n, p=...)``, from a cached
        distribution.
        """
        _, cdf = self._sampling_cdf(weights)
        return cdf.searchsorted(rng.random(n), side="right").astype(np.int64)

    def sample_windows(self, rng: np.random.Generator, n: int, window: int, burn_in: int = 0,
                       weights: np.ndarray | None = None, episodes: np.ndarray | None = None
                       ) -> dict[str, np.ndarray]:
        """Random sub-trajectories: ``window`` scored steps after up to ``burn_in`` history steps
        (of the ``episodes`` given, else of n episodes drawn by length or ``weights``).

        Returns right-padded arrays of length ``burn_in + window`` with a ``loss_mask`` on the
        scored steps and a ``traj_scale`` such that a window's summed log-likelihood times
        ``traj_scale`` is an unbiased estimate of the whole episode's: the window start is uniform
        over the L + W - 1 placements that overlap the episode (clipped at its ends), so each step
        is scored with probability W / (L + W - 1). The cost is O(n * (burn_in + window)),
        whatever the store's size.
        """
        eps = self.sample_episodes(rng, n, weights) if episodes is None else np.asarray(episodes)
        lengths = self._sampling_cdf(weights)[0][eps]
        seq = burn_in + window
        w0 = np.zeros(n, np.int64)  # the scored steps [w0, w1) of each row's episode
        w1 = lengths.astype(np.int64)
        scale = np.ones(n, np.float32)
        long = lengths > window  # shorter episodes are scored whole
        if long.any():
            start = rng.integers(-(window - 1), lengths[long])
            w0[long] = np.maximum(start, 0)
            w1[long] = np.minimum(start + window, lengths[long])
            scale[long] = (lengths[long] + window - 1) / window
        t = np.maximum(w0 - burn_in, 0)[:, None] + np.arange(seq)  # each row's episode steps
        valid = t < w1[:, None]
        src = np.where(valid, self.starts[eps][:, None] + t, 0)
        obs = self.observations[src].astype(np.float32, copy=False)
        act = self.actions[src].astype(np.float32, copy=False)
        obs[~valid] = 0.0
        act[~valid] = 0.0
        return {
            "obs": obs,
            "actions": act,
            "timesteps": np.where(valid, t, 0),
            "loss_mask": (valid & (t >= w0[:, None])).astype(np.float32),
            "traj_scale": scale,
            "returns": self.returns[eps].astype(np.float32),
            "s0": self.observations[self.starts[eps]],
            "s_end": self.observations[self.starts[eps] + self.lengths[eps] - 1],
            "episode_index": eps,
        }
