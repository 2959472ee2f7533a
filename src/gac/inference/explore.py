"""Exploration plans for online collection: z0 ~ p(z0 | y+), with y+ an optimistic return."""

from __future__ import annotations

import torch

from gac.config import InferenceConfig, OnlineConfig
from gac.inference.bank import PlanBank
from gac.inference.modes import plan
from gac.inference.planning import sample_conditioned
from gac.model import GACModel


class ExplorationPlanner:
    """Plans for a batch of episodes: the first ``n_explore`` explore (z0 ~ p(z0 | y+), by
    ``cfg.explore_steps`` Langevin steps of ``icfg.langevin_step_size``, from prior samples or,
    with ``cfg.explore_from="plan"``, from the mode's own plans), the rest follow ``icfg.mode``.
    A module-level class so that every collector builds the very same planner.

    At a mid-episode re-plan (``inference.replan_every``) the rollout passes ``achieved``, the
    return each episode has collected so far: an exploring episode then asks for the return
    still missing, y+ - achieved, from its current state (the posterior given the partial
    trajectory and the target, as a return-to-go)."""

    takes_achieved = True  # gac.rollout passes the returns so far at a re-plan

    def __init__(self, model: GACModel, icfg: InferenceConfig, cfg: OnlineConfig, y_plus: float,
                 n_explore: int, bank: PlanBank | None = None):
        self.model, self.icfg, self.cfg, self.bank = model, icfg, cfg, bank
        self.y_plus, self.n_explore = y_plus, n_explore

    def __call__(self, s0: torch.Tensor, gen: torch.Generator,
                 achieved: torch.Tensor | None = None) -> torch.Tensor:
        z0 = plan(self.model, s0, self.icfg, generator=gen, bank=self.bank)
        k = min(self.n_explore, len(s0))
        if self.cfg.exploration and k:
            target = self.y_plus if achieved is None else self.y_plus - achieved[:k].to(s0)
            start = z0[:k].clone() if self.cfg.explore_from == "plan" else None
            z0[:k] = sample_conditioned(self.model, s0[:k], target, self.cfg.explore_steps,
                                        self.icfg.langevin_step_size, gen, z0=start)
        return z0


def exploration_planner(model: GACModel, icfg: InferenceConfig, cfg: OnlineConfig, y_plus: float,
                        n_explore: int, bank: PlanBank | None = None) -> ExplorationPlanner:
    """The planner of one shard of collected episodes (see ``ExplorationPlanner``)."""
    return ExplorationPlanner(model, icfg, cfg, y_plus, n_explore, bank)
