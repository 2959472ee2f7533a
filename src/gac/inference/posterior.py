"""Posterior p(z0 | tau, y) for maximum-likelihood training with persistent Langevin chains."""

from __future__ import annotations

import torch
from torch import Tensor

from gac.inference.langevin import langevin
from gac.model import GACModel


def posterior_energy(
    model: GACModel,
    z0: Tensor,
    batch: dict[str, Tensor],
    traj_scale: Tensor | float | None = None,
) -> Tensor:
    """E(z0) = 1/2 |z0|^2 + traj_scale * action NLL + return NLL (+ end NLL with an end head),
    per sample (B,).

    ``batch``: obs (B, L, obs_dim), actions (B, L, act_dim), timesteps (B, L), loss_mask (B, L)
    (1 on scored steps), returns (B,) raw, s0 (B, obs_dim) raw, s_end (B, obs_dim) raw for a
    model with an end head, and optionally traj_scale (B,).
    ``traj_scale`` = episode length / scored steps turns the action NLL of a window into an
    unbiased estimate of the whole trajectory's; the argument wins over ``batch["traj_scale"]``,
    and 1 is used when neither is given.
    """
    if traj_scale is None:
        traj_scale = batch.get("traj_scale", 1.0)
    z = model.prior(z0)
    prior = 0.5 * z0.pow(2).flatten(1).sum(-1)
    actions = model.action_nll(batch["obs"], batch["actions"], batch["timesteps"], z,
                               batch["loss_mask"])
    returns = model.outcome_nll(z, batch)
    if isinstance(traj_scale, Tensor):
        traj_scale = traj_scale.to(actions)
    return prior + traj_scale * actions + returns


def sample_posterior(
    model: GACModel,
    z0: Tensor,
    batch: dict[str, Tensor],
    n_steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
    noise: bool | float = True,
) -> Tensor:
    """Advance (persistent) chains z0 by ``n_steps`` Langevin steps on the posterior energy
    (``noise`` scales the noise, see ``langevin``); returns the new states (detached). The
    model runs in eval mode while sampling."""
    return langevin(
        lambda z: posterior_energy(model, z, batch),
        z0, n_steps, step_size, noise=noise, generator=generator, model=model,
    )
