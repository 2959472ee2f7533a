"""Inference in the GAC model: Langevin posteriors for training, plan choice for acting."""

from gac.inference.bank import PlanBank, stitched_values
from gac.inference.explore import exploration_planner
from gac.inference.langevin import eval_mode, langevin
from gac.inference.modes import (
    MODES,
    Mode,
    Planner,
    get_mode,
    make_planner,
    modes_help,
    plan,
    register,
)
from gac.inference.planning import (
    ascend,
    exploit_objective,
    return_conditioned_energy,
    sample_conditioned,
)
from gac.inference.posterior import posterior_energy, sample_posterior

__all__ = [
    "MODES",
    "Mode",
    "PlanBank",
    "stitched_values",
    "Planner",
    "ascend",
    "eval_mode",
    "exploit_objective",
    "exploration_planner",
    "get_mode",
    "langevin",
    "make_planner",
    "modes_help",
    "plan",
    "posterior_energy",
    "register",
    "return_conditioned_energy",
    "sample_conditioned",
    "sample_posterior",
]
