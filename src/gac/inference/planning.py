"""Plan search primitives: gradient ascent on the predicted return, and Langevin sampling of
p(z0 | y). The inference modes built on them (``exploit``, ``guided``, ...) are in
``gac.inference.modes``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gac.inference.langevin import energy_grad, eval_mode, langevin
from gac.model import GACModel


def exploit_objective(model: GACModel, z0: Tensor, s0: Tensor | None,
                      prior_weight: float, anchor: Tensor | None = None) -> Tensor:
    """r(U(z0)[, s0]) - (prior_weight / 2) |z0 - anchor|^2 per sample (B,), scaled return units
    (anchor None: the prior's mode 0)."""
    offset = z0 if anchor is None else z0 - anchor
    return model.predict_return(model.prior(z0), s0) - 0.5 * prior_weight * offset.pow(2).flatten(
        1
    ).sum(-1)


def ascend(model: GACModel, z0: Tensor, s0: Tensor | None, n_steps: int, step_size: float,
           prior_weight: float, sphere: bool = False, anchored: bool = False
           ) -> tuple[Tensor, Tensor]:
    """Gradient ascent on ``exploit_objective`` (``sphere``: on r alone, on the sphere
    |z0| = sqrt(dim); ``anchored``: the penalty pulls each start toward itself, a trust region,
    instead of toward 0) for every start independently.

    Returns each start's best iterate (B, N, d) and its objective (B,)."""
    z = z0.detach()
    radius = z[0].numel() ** 0.5
    if sphere:
        z = z * (radius / z.flatten(1).norm(dim=1).clamp(min=1e-12))[:, None, None]
    weight = 0.0 if sphere else prior_weight
    anchor = z if anchored else None
    best_z, best = z, torch.full(z.shape[:1], -torch.inf, device=z.device, dtype=z.dtype)
    with eval_mode(model):
        for k in range(n_steps + 1):
            if k == n_steps:  # the last iterate is only scored: no backward pass
                with torch.no_grad():
                    objective = exploit_objective(model, z, s0, weight, anchor)
            else:
                neg, grad = energy_grad(
                    lambda x: -exploit_objective(model, x, s0, weight, anchor), z)
                objective = -neg
            better = objective > best
            best = torch.where(better, objective, best)
            best_z = torch.where(better[:, None, None], z, best_z)
            if k == n_steps:
                break
            if sphere:
                # Step along the gradient's tangential part by an angle ~ step_size, renormalise.
                g = -grad
                g = g - (g * z).flatten(1).sum(1)[:, None, None] * z / radius**2
                g = g / g.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]
                z = z + step_size * radius * g
                z = z * (radius / z.flatten(1).norm(dim=1))[:, None, None]
            else:
                z = z - step_size * grad
    return best_z, best


def return_conditioned_energy(model: GACModel, z0: Tensor, s0: Tensor | None,
                              y_raw: Tensor | float, guidance: float = 1.0) -> Tensor:
    """1/2 |z0|^2 + guidance * (r(U(z0)[, s0]) - y/scale)^2 / (2 sigma_y^2), per sample (B,)."""
    prior = 0.5 * z0.pow(2).flatten(1).sum(-1)
    return prior + guidance * model.return_nll(model.prior(z0), s0, y_raw)


def sample_conditioned(
    model: GACModel,
    s0: Tensor,
    y_plus: Tensor | float,
    n_steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
    *,
    guidance: float = 1.0,
    noise: bool | float = True,
    z0: Tensor | None = None,
) -> Tensor:
    """z0 ~ p(z0 | y+) proportional to N(z0; 0, I) p(y+ | U(z0)[, s0])^guidance by Langevin
    from prior samples (or from ``z0``). s0 (B, obs_dim) raw; y_plus raw, scalar or (B,)."""
    if z0 is None:
        z0 = model.sample_z0(s0.shape[0], generator)
    return langevin(
        lambda z: return_conditioned_energy(model, z, s0, y_plus, guidance),
        z0, n_steps, step_size, noise=noise, generator=generator, model=model,
    )
