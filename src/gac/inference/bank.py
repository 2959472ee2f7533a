"""The plan bank: the training segments' posterior plans with their returns, first and last
observations and lengths, and what the bank modes (``local``, ``stitch``, ``lookahead``) measure
on it: nearness in the metric of ``local_dims``, and stitched values, the best discounted return
of a chain of data segments joined end to start (returns only, no step rewards)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from gac.model import GACModel


class PlanBank:
    """The training episodes' posterior plans z0 (N, n_latent, d), returns (N,), first and
    last observations (N, obs_dim; raw units) and lengths (N,): what the ``elite``, ``refine``,
    ``select``, ``local``, ``stitch`` and ``lookahead`` modes choose from. Kept by reference: a trainer's
    chains update in place. Checkpoints carry them all (the chains, ``episode_returns``,
    ``episode_first_obs``, ``episode_last_obs``, ``episode_lengths``)."""

    def __init__(self, z0: Tensor, returns: np.ndarray | Tensor,
                 starts: np.ndarray | Tensor | None = None,
                 ends: np.ndarray | Tensor | None = None,
                 lengths: np.ndarray | Tensor | None = None):
        returns = np.asarray(returns, dtype=np.float64)
        if z0.dim() != 3 or len(z0) != len(returns):
            raise ValueError(f"plan bank: {tuple(z0.shape)} plans for {len(returns)} returns; "
                             f"expected (N, n_latent, d) and N returns")
        starts, ends = (self._rows(x, len(returns), what)
                        for x, what in ((starts, "first"), (ends, "last")))
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            if lengths.shape != returns.shape:
                raise ValueError(f"plan bank: {lengths.shape} lengths for {len(returns)} plans")
        self.z0, self.returns, self.starts, self.ends, self.lengths = (z0, returns, starts, ends,
                                                                      lengths)
        self._values: dict[tuple, Tensor] = {}  # stitched values, memoised

    @staticmethod
    def _rows(x: np.ndarray | Tensor | None, n: int, what: str) -> Tensor | None:
        if x is None:
            return None
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if x.dim() != 2 or len(x) != n:
            raise ValueError(f"plan bank: {what} observations of shape {tuple(x.shape)} for "
                             f"{n} plans; expected (N, obs_dim)")
        return x

    def arrays(self) -> tuple[Tensor, np.ndarray, Tensor | None, Tensor | None,
                              np.ndarray | None]:
        """What the bank is made of, for ``PlanBank(*arrays)`` elsewhere (Ray actors)."""
        return self.z0.detach().cpu(), self.returns, self.starts, self.ends, self.lengths

    def head(self, n: int) -> PlanBank:
        """The bank of the first ``n`` plans (views of this one's arrays)."""
        rows = (None if x is None else x[:n] for x in (self.starts, self.ends, self.lengths))
        return PlanBank(self.z0[:n], self.returns[:n], *rows)

    def best(self, k: int) -> Tensor:
        """Indices of the ``k`` highest-return episodes, best first (ties by order)."""
        if k < 1:
            raise ValueError(f"inference.elite_episodes must be at least 1, got {k}")
        return torch.as_tensor(np.argsort(-self.returns, kind="stable")[:k])

    def top(self, k: int) -> Tensor:
        """The plans of the ``k`` highest-return episodes (k, n_latent, d), best first."""
        return self.z0[self.best(k).to(self.z0.device)]

    def draw(self, k: int, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """``batch`` plans drawn uniformly from those of the ``k`` highest-return episodes."""
        top = self.top(k)
        device = generator.device if generator is not None else "cpu"
        pick = torch.randint(len(top), (batch,), generator=generator, device=device)
        return top[pick.to(top.device)]


def in_metric(model: GACModel, x: Tensor, dims: int) -> Tensor:
    """Rows of raw observations in the space where ``local`` and ``stitch`` measure nearness:
    the first ``dims`` entries as they are, or (0) all of them, normalised."""
    if dims > x.shape[1]:
        raise ValueError(f"inference.local_dims={dims}, but observations have {x.shape[1]} "
                         f"entries")
    p = model.obs_mean
    x = x.to(p)
    return x[:, :dims] if dims else (x - p) / model.obs_std


def _distance_blocks(a: Tensor, b: Tensor) -> Iterator[tuple[int, Tensor]]:
    """(i, distances of rows a[i:i + chunk] to every row of b): bounded (chunk, N) matrices,
    so that nearness over a large bank never holds the whole (M, N) one."""
    chunk = max(1, 2**24 // max(1, len(b)))
    for i in range(0, len(a), chunk):
        yield i, torch.cdist(a[i:i + chunk], b)


def _memo_key(model: GACModel, dims: int, *parts: object) -> tuple:
    """The key under which a bank memoises a quantity measured in ``local_dims``' metric. On
    every entry (dims 0) nearness is measured after the model's normalisation, so its
    statistics are part of the key: one bank may serve models normalised differently."""
    stats = () if dims else (tuple(model.obs_mean.tolist()), tuple(model.obs_std.tolist()))
    return (*parts, dims, stats)


def nearest_starts(model: GACModel, s0: Tensor, starts: Tensor, k: int, dims: int) -> Tensor:
    """Indices (B, k) of the k bank starts nearest each state, nearest first (``in_metric``);
    k is capped at the bank's size."""
    a, b = in_metric(model, s0, dims), in_metric(model, starts, dims)
    k = min(k, len(b))
    out = torch.empty(len(a), k, dtype=torch.long, device=a.device)
    for i, dist in _distance_blocks(a, b):
        out[i:i + len(dist)] = dist.topk(k, dim=1, largest=False).indices
    return out


def stitched_values(model: GACModel, bank: PlanBank, gamma: float, radius: float,
                    dims: int) -> Tensor:
    """V_i = y_i + gamma^L_i max_j V_j over the segments j whose first observation lies within
    ``radius`` of segment i's last one (0 where none does): the best discounted return of a
    chain of data segments that begins with i. Returns only, no step rewards: it is value
    iteration on the graph of segments that the data could have joined end to start. Memoised
    on the bank; (N,) on the model's device."""
    key = _memo_key(model, dims, gamma, radius)
    if key in bank._values:
        return bank._values[key]
    if bank.ends is None or bank.lengths is None:
        raise ValueError("stitched values need the training segments' last observations and "
                         "lengths: this plan bank has none (a checkpoint written before they "
                         "were stored: retrain)")
    starts, ends = in_metric(model, bank.starts, dims), in_metric(model, bank.ends, dims)
    src, dst = [], []  # edges i -> j
    for i, dist in _distance_blocks(ends, starts):
        e, j = (dist <= radius).nonzero(as_tuple=True)
        src.append(e + i)
        dst.append(j)
    src, dst = torch.cat(src), torch.cat(dst)
    y = torch.as_tensor(bank.returns, device=starts.device)
    disc = torch.as_tensor(float(gamma) ** bank.lengths.astype(np.float64), device=y.device)
    has_next = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    has_next[src] = True
    v = y.clone()
    # gamma^L < 1 makes this a contraction; it converges to 1e-6 of the return scale
    for _ in range(10_000):
        best = torch.full_like(y, -torch.inf).scatter_reduce(0, src, v[dst], "amax")
        new = y + disc * torch.where(has_next, best, torch.zeros_like(best))
        done = (new - v).abs().max() <= 1e-6 * (1 + y.abs().max())
        v = new
        if done:
            break
    bank._values[key] = v.to(model.obs_mean.dtype)
    return bank._values[key]


def value_at(model: GACModel, points: Tensor, bank: PlanBank, v: Tensor, radius: float,
              dims: int) -> Tensor:
    """max v_j over the bank segments whose first observation lies within ``radius`` of each
    raw point (M, obs_dim), 0 where none does: ``stitched_values``' continuation, from anywhere."""
    a, b = in_metric(model, points, dims), in_metric(model, bank.starts, dims)
    out = torch.zeros(len(a), dtype=v.dtype, device=a.device)
    v = v.to(a.device)
    for i, dist in _distance_blocks(a, b):
        best = torch.where(dist <= radius, v[None, :], -torch.inf).max(dim=1).values
        out[i:i + len(dist)] = torch.where(best > -torch.inf, best, torch.zeros_like(best))
    return out


def arrivals(model: GACModel, bank: PlanBank, k: int, radius: float, dims: int) -> Tensor:
    """Indices of the segments that *arrive* where the data's returns are earned: those whose
    last observation lies within ``radius`` of the first observation of one of the ``k``
    highest-return segments (if none does, those whose last observation lies nearest one).
    Returns only: a segment that starts where return is earned scores high whatever it does
    next, so the best segments' starts mark the destination; a segment that ends there was
    driven to it, and its plan, played from near that point, holds there. Memoised on the bank."""
    key = _memo_key(model, dims, "arrivals", k, radius)
    if key in bank._values:
        return bank._values[key]
    if bank.starts is None or bank.ends is None:
        raise ValueError("arrive plans need the training segments' first and last "
                         "observations: this plan bank has none (a checkpoint written before "
                         "they were stored: retrain)")
    targets = in_metric(model, bank.starts[bank.best(k)], dims)
    ends = in_metric(model, bank.ends, dims)
    near = torch.empty(len(ends), dtype=targets.dtype, device=targets.device)
    for i, dist in _distance_blocks(ends, targets):
        near[i:i + len(dist)] = dist.min(dim=1).values
    inside = near <= radius
    idx = (inside if inside.any() else near <= near.min()).nonzero(as_tuple=True)[0]
    bank._values[key] = idx
    return idx
