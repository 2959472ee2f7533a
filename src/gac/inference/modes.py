"""Inference modes: how a plan z0 is chosen for each initial state. ``MODES`` maps a mode's
name (``InferenceConfig.mode``) to its planner function; the config's validation, the CLI's
help, the sweep spec and the docs all read it. A new mode is a function here, registered with
``@register(name, summary)``, and its test.

- ``exploit``: a plan of high predicted return r(U(z0), s0) by gradient ascent from
  ``n_starts`` prior samples per state, best start kept; each start keeps its best iterate, so
  the result is never worse than its prior sample. Two ways to keep the plan where the model
  has data (``cfg.constraint``):
  ``sphere``: ascent on r alone, each step of angular length ``ascent_lr`` along the
  gradient and projected back onto the sphere |z0| = sqrt(dim), where nearly all of N(0, I)'s
  mass lies (and where posterior samples of real trajectories sit);
  ``penalty`` (default): r - (lambda/2)|z0|^2 with plain steps (lr = ``ascent_lr``; stable for
  lambda*lr < 2). In high dimension its optimum is drawn toward the prior's mode z0 = 0; in
  practice that keeps the plan where the decoder is reliable, while the sphere lets the ascent
  find plans that the return head over-rates.
- ``guided``: LPT's exploitation-inclined posterior, Langevin on
  1/2|z0|^2 + omega (r(U(z0), s0) - y*/scale)^2 / (2 sigma^2).
- ``random``: z0 ~ N(0, I), no search.
- ``elite``: no search: a plan drawn from the posterior plans of the ``elite_episodes``
  highest-return training episodes (a ``PlanBank``), the region where the decoder and the
  return head were trained. Where the return head over-rates plans that ascent finds, the
  data's own best plans can play better (locomotion; docs/design-notes.md).
- ``select``: a plan drawn from the ``elite_episodes`` bank plans with the highest predicted
  return r(U(z0), s0) for *this* initial state: the data's plans, ranked per state.
- ``local``: the plan of the highest-return training segment among the ``local_share`` of them
  whose first observation lies nearest this state (``local_dims``: on the position only). The return
  head is not used: data returns of segments that start here rank their plans. Re-planned
  every few steps, an episode is stitched from segments of the data (maze2d's default).
- ``stitch``: ``local`` with each segment ranked by its stitched value, the best discounted
  return of a chain of data segments that begins with it (segments joined end to start
  within ``stitch_radius``; returns only): near the goal, ``local`` keeps picking the
  segments that leave it. Better on maze2d-medium, worse on umaze (docs/design-notes.md).
- ``lookahead``: ``stitch`` with each nearby plan valued from this state by the model, its
  predicted return plus the stitched value where its end head (``model.end_sigma``) says it
  ends.
- ``arrive``: the plan of a segment that ends where the ``elite_episodes`` best segments start
  (the place where the data's returns are earned; within ``stitch_radius``), the one whose
  first observation lies nearest this state. Re-planned every few steps it drives there and,
  once there, holds: its segment's controller was braking onto that point. Returns only.
- ``refine``: the ``elite`` draw z_e, then ascent on r(U(z0), s0) - (lambda/2)|z0 - z_e|^2 (a
  trust region around it; ``n_starts`` unused): a plan known to decode well, adapted to this s0
  without leaving the region where the return head was trained. One draw, not the elite plan
  of highest predicted return: that argmax is fragile (docs/design-notes.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gac.config import RENAMED_MODES, InferenceConfig
from gac.inference.bank import PlanBank, arrivals, in_metric, nearest_starts, stitched_values, value_at
from gac.inference.planning import ascend, sample_conditioned
from gac.model import GACModel

Planner = Callable[[Tensor, torch.Generator], Tensor]  # raw s0 (B, obs_dim) -> z0 (B, N, d)


# A mode's planner: (model, s0, cfg, generator, bank=, target_return=, extra_starts=) -> z0.
ModeFn = Callable[..., Tensor]


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str  # one line: `gac eval --help` and the docs
    fn: ModeFn


MODES: dict[str, Mode] = {}


def register(name: str, summary: str) -> Callable[[ModeFn], ModeFn]:
    """Add a planner function to ``MODES`` under ``name``."""

    def add(fn: ModeFn) -> ModeFn:
        MODES[name] = Mode(name, summary, fn)
        return fn

    return add


def get_mode(name: str) -> Mode:
    """The registered mode ``name``; an unknown name fails with the known ones."""
    if name in MODES:
        return MODES[name]
    hint = f" (renamed {RENAMED_MODES[name]!r})" if name in RENAMED_MODES else ""
    raise ValueError(f"unknown inference mode {name!r}{hint}; expected {', '.join(MODES)}")


def modes_help() -> str:
    """The modes and what each does, one clause each (for `--help` texts)."""
    return "; ".join(f"{m.name} ({m.summary})" for m in MODES.values())


def _checked_bank(model: GACModel, bank: PlanBank | None) -> PlanBank:
    """The bank, after checking that there is one and that its plans fit the model."""
    if bank is None:
        raise ValueError("this inference mode chooses among the training episodes' plans "
                         "(a plan bank), and none was given: load the policy with "
                         "gac.runs.load_policy from a checkpoint that stores them (older "
                         "checkpoints do not: retrain), or use a Trainer's plan_bank")
    if bank.z0.shape[1:] != model.latent_shape:
        raise ValueError(f"plan bank: plans of shape {tuple(bank.z0.shape[1:])}, but the model's "
                         f"are {model.latent_shape}")
    return bank


def _best_near(model: GACModel, s0: Tensor, cfg: InferenceConfig, bank: PlanBank,
               labels: Tensor) -> Tensor:
    """The plan of the highest-``labels`` segment among the candidates for each state: the
    segments whose first observation lies within ``local_radius`` of it (if positive and any
    does), else the ``local_share`` of them that start nearest."""
    with torch.no_grad():
        k = max(1, round(cfg.local_share * len(bank.starts)))
        dist = None
        if cfg.local_radius > 0:  # every distance is needed: the share's nearest come from it
            dist = torch.cdist(in_metric(model, s0, cfg.local_dims),
                               in_metric(model, bank.starts, cfg.local_dims))  # (B, N)
            near = dist.topk(min(k, dist.shape[1]), dim=1, largest=False).indices
        else:
            near = nearest_starts(model, s0, bank.starts, k, cfg.local_dims)
        labels = labels.to(near.device)
        best = labels[near].argmax(dim=1)  # the first: nearest among equals
        pick = near[torch.arange(len(near), device=near.device), best]
        if dist is not None:
            scored = torch.where(dist <= cfg.local_radius, labels[None, :], -torch.inf)
            top = scored.max(dim=1, keepdim=True).values
            # the nearest among the best, as above; rows with no start inside keep the share's
            inside = torch.where(scored == top, dist, torch.inf).argmin(dim=1)
            pick = torch.where(top[:, 0] > -torch.inf, inside, pick)
    p = model.obs_mean
    return bank.z0[pick.to(bank.z0.device)].to(device=p.device, dtype=p.dtype)


def _bank_with_starts(model: GACModel, bank: PlanBank | None, s0: Tensor) -> PlanBank:
    bank = _checked_bank(model, bank)
    if bank.starts is None:
        raise ValueError("local and stitch plans need the training segments' first "
                         "observations: this plan bank has none (a checkpoint written before "
                         "they were stored: retrain)")
    if bank.starts.shape[1] != s0.shape[1]:
        raise ValueError(f"plan bank: first observations of {bank.starts.shape[1]} entries, but "
                         f"states have {s0.shape[1]}")
    return bank


def _elite_draw(model: GACModel, bank: PlanBank | None, k: int, batch: int,
                generator: torch.Generator | None) -> Tensor:
    p = model.obs_mean
    plans = _checked_bank(model, bank).draw(k, batch, generator)
    return plans.to(device=p.device, dtype=p.dtype)


def _search(model: GACModel, s0: Tensor, cfg: InferenceConfig, starts: Tensor,
            extra_starts: Tensor | None, refine: bool) -> Tensor:
    """Ascent from ``starts`` (B, n, ...) plus ``extra_starts`` for every state; the best
    start per state."""
    b = s0.shape[0]
    if extra_starts is not None:
        extra = extra_starts.to(starts).expand(b, *extra_starts.shape)
        starts = torch.cat([starts, extra], dim=1)
    n = starts.shape[1]
    z, objective = ascend(model, starts.reshape(b * n, *model.latent_shape),
                          s0.repeat_interleave(n, dim=0), cfg.ascent_steps, cfg.ascent_lr,
                          cfg.prior_weight, sphere=cfg.constraint == "sphere" and not refine,
                          anchored=refine)
    best = objective.view(b, n).argmax(dim=1)
    return z.view(b, n, *model.latent_shape)[torch.arange(b, device=z.device), best]


@register("exploit", "gradient ascent on the predicted return from n_starts prior samples")
def exploit(model: GACModel, s0: Tensor, cfg: InferenceConfig,
            generator: torch.Generator | None = None, *, extra_starts: Tensor | None = None,
            **_: object) -> Tensor:
    b = s0.shape[0]
    starts = model.sample_z0(b * cfg.n_starts, generator).view(b, cfg.n_starts,
                                                                *model.latent_shape)
    return _search(model, s0, cfg, starts, extra_starts, refine=False)


@register("refine", "an elite plan optimised for this state in a trust region around it")
def refine(model: GACModel, s0: Tensor, cfg: InferenceConfig,
           generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
           extra_starts: Tensor | None = None, **_: object) -> Tensor:
    # One drawn elite plan per state: the argmax over elite plans is fragile.
    starts = _elite_draw(model, bank, cfg.elite_episodes, s0.shape[0], generator)[:, None]
    return _search(model, s0, cfg, starts, extra_starts, refine=True)


@register("guided", "LPT's posterior p(z0 | y*) by Langevin, y* = target_return")
def guided(model: GACModel, s0: Tensor, cfg: InferenceConfig,
           generator: torch.Generator | None = None, *, target_return: Tensor | float | None = None,
           **_: object) -> Tensor:
    y = target_return if target_return is not None else cfg.target_return
    if y is None:
        raise ValueError(
            "guided planning needs a target return y*: pass target_return= or set "
            "InferenceConfig.target_return (raw units, e.g. the dataset's best return)"
        )
    return sample_conditioned(model, s0, y, cfg.langevin_steps, cfg.langevin_step_size, generator,
                              guidance=cfg.guidance, noise=cfg.langevin_noise)


@register("random", "a plan drawn from the prior N(0, I), no search")
def random_plan(model: GACModel, s0: Tensor, cfg: InferenceConfig,
           generator: torch.Generator | None = None, **_: object) -> Tensor:
    return model.sample_z0(s0.shape[0], generator)


@register("elite", "a plan of one of the elite_episodes best training episodes, no search")
def elite(model: GACModel, s0: Tensor, cfg: InferenceConfig,
          generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
          **_: object) -> Tensor:
    return _elite_draw(model, bank, cfg.elite_episodes, s0.shape[0], generator)


@register("select", "a plan drawn from the elite_episodes bank plans the return head rates "
                    "highest for this state")
def select(model: GACModel, s0: Tensor, cfg: InferenceConfig,
           generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
           **_: object) -> Tensor:
    """Where a return depends on where an episode starts (mazes: a segment that starts at the
    goal scores high whatever it does next), the data's best plans are not the best plans for
    *this* state; r(U(z0), s0) ranks every bank plan for each state instead, with no ascent."""
    p = model.obs_mean
    z0 = _checked_bank(model, bank).z0.to(device=p.device, dtype=p.dtype)
    k = min(cfg.elite_episodes, len(z0))
    if k < 1:
        raise ValueError(f"inference.elite_episodes must be at least 1, got {cfg.elite_episodes}")
    b, n = s0.shape[0], len(z0)
    with torch.no_grad():
        z = model.prior(z0)  # once per call: U of every bank plan
        scores = torch.empty(b, n, device=p.device, dtype=p.dtype)
        chunk = max(1, 65_536 // b)  # bounded memory for large banks
        for i in range(0, n, chunk):
            zc = z[i:i + chunk]
            m = len(zc)
            r = model.predict_return(zc.repeat(b, 1, 1), s0.to(p).repeat_interleave(m, dim=0))
            scores[:, i:i + chunk] = r.view(b, m)
        top = scores.topk(k, dim=1).indices  # (B, k)
    device = generator.device if generator is not None else "cpu"
    pick = torch.randint(k, (b,), generator=generator, device=device).to(top.device)
    return z0[top[torch.arange(b, device=top.device), pick]]


@register("local", "the plan of the best-return training segment among the local_share of "
                   "them that start nearest this state")
def local(model: GACModel, s0: Tensor, cfg: InferenceConfig,
          generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
          **_: object) -> Tensor:
    """Segments that start where this episode is now, and what the best of them did next: the
    return head never scores a plan with a state it was not trained with (``select``'s argmax
    does, and over-rates plans foreign to the state). With re-planning every few steps the
    episode is stitched from such segments (docs/design-notes.md, "D4RL's maze2d")."""
    bank = _bank_with_starts(model, bank, s0)
    return _best_near(model, s0, cfg, bank, torch.as_tensor(bank.returns))


@register("stitch", "the plan of the best-stitched-value training segment among the "
                    "local_share of them that start nearest this state")
def stitch(model: GACModel, s0: Tensor, cfg: InferenceConfig,
           generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
           **_: object) -> Tensor:
    """``local`` ranked by what a segment leads to, not by its own return alone: segments are
    joined end to start where the data could have (within ``stitch_radius``), and each is
    labelled with the best discounted return of a chain that begins with it
    (``stitched_values``). Near the goal, ``local`` picks the segments that leave it (their
    returns, earned at their start, are the highest); ``stitch`` also values the segments
    that arrive there, and those that lead to them from afar (docs/design-notes.md)."""
    bank = _bank_with_starts(model, bank, s0)
    v = stitched_values(model, bank, cfg.stitch_gamma, cfg.stitch_radius, cfg.local_dims)
    return _best_near(model, s0, cfg, bank, v)


@register("lookahead", "stitch, with each nearby plan valued from this state by the model: "
                       "its predicted return, plus the stitched value where its end head "
                       "says it ends")
def lookahead(model: GACModel, s0: Tensor, cfg: InferenceConfig,
              generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
              **_: object) -> Tensor:
    """``stitch`` scores a nearby segment by what it did from *its* start: its return and the
    segments near its data end point. Played from this state the same plan may end elsewhere.
    Here each of the ``local_share`` nearest segments' plans z is valued from this state s:
    r(z, s) + gamma^L V(e(z, s)), the return head's prediction plus the stitched value V of
    the segments that start near the end head's predicted end e(z, s)
    (``lookahead_return="data"``: the segment's data return y_i in place of r). Needs an end head
    (``model.end_sigma`` > 0); returns only, no step rewards. Candidates are the share's nearest
    only: ``local_radius`` is not read here."""
    bank = _bank_with_starts(model, bank, s0)
    if model.end_head is None:
        raise ValueError("lookahead plans need an end head (model.end_sigma > 0); this model "
                         "has none: use stitch, or retrain with --set model.end_sigma=0.1")
    v = stitched_values(model, bank, cfg.stitch_gamma, cfg.stitch_radius, cfg.local_dims)
    p = model.obs_mean
    with torch.no_grad():
        near = nearest_starts(model, s0, bank.starts,
                              max(1, round(cfg.local_share * len(bank.starts))),
                              cfg.local_dims)  # (B, k)
        k = near.shape[1]
        flat = near.reshape(-1)
        z = model.prior(bank.z0[flat.to(bank.z0.device)].to(device=p.device, dtype=p.dtype))
        s = s0.to(p).repeat_interleave(k, dim=0)
        if cfg.lookahead_return == "data":
            y = torch.as_tensor(bank.returns, device=p.device, dtype=p.dtype)[flat.to(p.device)]
        else:
            y = model.unscale_return(model.predict_return(z, s if model.cfg.return_condition_s0
                                                          else None))
        end = model.end_head(z, model.normalise_obs(s)) * model.obs_std + model.obs_mean
        lengths = torch.as_tensor(bank.lengths, device=p.device, dtype=p.dtype)[flat.to(p.device)]
        score = y + cfg.stitch_gamma ** lengths * value_at(
            model, end, bank, v, cfg.stitch_radius, cfg.local_dims)
        best = score.view(len(near), k).argmax(dim=1)
        pick = near[torch.arange(len(near), device=near.device), best.to(near.device)]
    return bank.z0[pick.to(bank.z0.device)].to(device=p.device, dtype=p.dtype)


@register("arrive", "the plan of the training segment starting nearest this state among those "
                    "that end where the best-return segments start")
def arrive(model: GACModel, s0: Tensor, cfg: InferenceConfig,
           generator: torch.Generator | None = None, *, bank: PlanBank | None = None,
           **_: object) -> Tensor:
    """Where the data never stay (maze2d: a goal is replaced the moment it is reached), the bank
    modes that rank segments by their returns drive to the goal and leave it again: near the
    goal, the best-return segments are those that start there and go elsewhere. Here the
    destination comes from the returns (the first observations of the ``elite_episodes`` best
    segments), and only segments that end there are played (``arrivals``): from afar, the one
    that starts nearest drives there; once there, such a plan brakes onto the point and holds
    (docs/design-notes.md, "holding at the goal")."""
    bank = _bank_with_starts(model, bank, s0)
    cand = arrivals(model, bank, cfg.elite_episodes, cfg.stitch_radius, cfg.local_dims)
    with torch.no_grad():
        near = nearest_starts(model, s0, bank.starts[cand.cpu()], 1, cfg.local_dims)[:, 0]
        pick = cand.to(near.device)[near]
    p = model.obs_mean
    return bank.z0[pick.to(bank.z0.device)].to(device=p.device, dtype=p.dtype)


def plan(
    model: GACModel,
    s0: Tensor,
    cfg: InferenceConfig,
    generator: torch.Generator | None = None,
    target_return: Tensor | float | None = None,
    extra_starts: Tensor | None = None,
    bank: PlanBank | None = None,
) -> Tensor:
    """A plan z0 (B, n_latent, d) for each raw initial observation in s0 (B, obs_dim), chosen
    by the mode ``cfg.mode``.

    ``target_return`` (raw units) overrides ``cfg.target_return`` in guided mode.
    ``extra_starts`` (M, n_latent, d), exploit and refine modes: starts tried for every state on
    top of the mode's own (e.g. posterior chains of the best trajectories); in refine, each is
    the centre of its own trust region. ``bank``: the training episodes' plans (elite, refine,
    select, local, stitch).
    """
    return get_mode(cfg.mode).fn(model, s0, cfg, generator, bank=bank,
                                 target_return=target_return, extra_starts=extra_starts)


def make_planner(model: GACModel, cfg: InferenceConfig, bank: PlanBank | None = None,
                 target_return: Tensor | float | None = None) -> Planner:
    """``plan`` with everything but the states and the generator fixed."""
    get_mode(cfg.mode)  # an unknown mode fails now, not at the first episode

    def planner(s0: Tensor, generator: torch.Generator) -> Tensor:
        return plan(model, s0, cfg, generator, target_return=target_return, bank=bank)

    return planner
