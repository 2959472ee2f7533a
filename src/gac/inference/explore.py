"""Exploration plans for online collection: z0 ~ p(z0 | y+), with y+ an optimistic return."""

from __future__ import annotations

import torch

from gac.config import InferenceConfig, OnlineConfig
from gac.inference.modes import PlanBank, Planner, plan
from gac.inference.planning import sample_conditioned
from gac.model import GACModel


def exploration_planner(model: GACModel, icfg: InferenceConfig, cfg: OnlineConfig, y_plus: float,
                        n_explore: int, bank: PlanBank | None = None) -> Planner:
    """Plans for a batch of episodes: the first ``n_explore`` explore (z0 ~ p(z0 | y+), by
    ``cfg.explore_steps`` Langevin steps of ``icfg.langevin_step_size``), the rest follow
    ``icfg.mode``. A module-level factory so that every collector builds the very same
    planner."""

    def planner(s0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        z0 = plan(model, s0, icfg, generator=gen, bank=bank)
        k = min(n_explore, len(s0))
        if cfg.exploration and k:
            z0[:k] = sample_conditioned(model, s0[:k], y_plus, cfg.explore_steps,
                                        icfg.langevin_step_size, gen)
        return z0

    return planner
