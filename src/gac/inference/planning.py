"""Choosing a latent plan z0 before (or during) an episode: one entry point, ``plan``.

Modes (``InferenceConfig.mode``):
- ``exploit``: a plan of high predicted return r(U(z0), s0) by gradient ascent from
  ``n_starts`` prior samples per state, best start kept; each start keeps its best iterate, so
  the result is never worse than its prior sample. Two ways to keep the plan where the model
  has data (``cfg.constraint``):
  ``sphere``: ascent on r alone, each step of angular length ``step_size`` along the
  gradient and projected back onto the sphere |z0| = sqrt(dim), where nearly all of N(0, I)'s
  mass lies (and where posterior samples of real trajectories sit);
  ``penalty`` (default): r - (lambda/2)|z0|^2 with plain steps (lr = ``step_size``; stable for
  lambda*lr < 2). In high dimension its optimum is drawn toward the prior's mode z0 = 0; in
  practice that keeps the plan where the decoder is reliable, while the sphere lets the ascent
  find plans that the return head over-rates.
- ``guided``: LPT's exploitation-inclined posterior, Langevin on
  1/2|z0|^2 + omega (r(U(z0), s0) - y*/scale)^2 / (2 sigma^2).
- ``prior``: z0 ~ N(0, I).
- ``elite``: no search: a plan drawn from the posterior plans of the ``elite_episodes``
  highest-return training episodes (``GACModel.elite_plans``), the region where the decoder
  and the return head were trained. Where the return head over-rates plans that ascent finds,
  the data's own best plans can play better (locomotion; docs/design-notes.md).
- ``refine``: the ``elite`` draw z_e, then ascent on r(U(z0), s0) - (lambda/2)|z0 - z_e|^2 (a
  trust region around it; ``n_starts`` unused): a plan known to decode well, adapted to this s0
  without leaving the region where the return head was trained. One draw, not the elite plan
  of highest predicted return: that argmax is fragile (docs/design-notes.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gac.config import InferenceConfig
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
            neg, grad = energy_grad(lambda x: -exploit_objective(model, x, s0, weight, anchor), z)
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
    noise: bool = True,
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


def plan(
    model: GACModel,
    s0: Tensor,
    cfg: InferenceConfig,
    generator: torch.Generator | None = None,
    target_return: Tensor | float | None = None,
    extra_starts: Tensor | None = None,
) -> Tensor:
    """A plan z0 (B, n_latent, d) for each raw initial observation in s0 (B, obs_dim).

    ``target_return`` (raw units) overrides ``cfg.target_return`` in guided mode.
    ``extra_starts`` (M, n_latent, d), exploit and refine modes: starts tried for every state on
    top of the mode's own (e.g. posterior chains of the best trajectories); in refine, each is
    the centre of its own trust region."""
    b = s0.shape[0]
    if cfg.mode == "prior":
        return model.sample_z0(b, generator)
    if cfg.mode == "elite":
        return model.elite_plans(cfg.elite_episodes, b, generator)
    if cfg.mode == "guided":
        y = target_return if target_return is not None else cfg.target_return
        if y is None:
            raise ValueError(
                "guided planning needs a target return y*: pass target_return= or set "
                "InferenceConfig.target_return (raw units, e.g. the dataset's best return)"
            )
        return sample_conditioned(model, s0, y, cfg.n_steps, cfg.step_size, generator,
                                  guidance=cfg.guidance, noise=cfg.noise)
    if cfg.mode in ("exploit", "refine"):
        refine = cfg.mode == "refine"
        if refine:
            # One drawn elite plan per state: the argmax over elite plans is fragile.
            starts = model.elite_plans(cfg.elite_episodes, b, generator)[:, None]
        else:
            starts = model.sample_z0(b * cfg.n_starts, generator).view(b, cfg.n_starts,
                                                                        *model.latent_shape)
        if extra_starts is not None:
            extra = extra_starts.to(starts).expand(b, *extra_starts.shape)
            starts = torch.cat([starts, extra], dim=1)
        n = starts.shape[1]
        z, objective = ascend(model, starts.reshape(b * n, *model.latent_shape),
                              s0.repeat_interleave(n, dim=0), cfg.n_steps, cfg.step_size,
                              cfg.prior_weight, sphere=cfg.constraint == "sphere" and not refine,
                              anchored=refine)
        best = objective.view(b, n).argmax(dim=1)
        return z.view(b, n, *model.latent_shape)[torch.arange(b, device=z.device), best]
    raise ValueError(f"unknown inference mode {cfg.mode!r}; expected exploit, refine, guided, prior "
                     f"or elite")
