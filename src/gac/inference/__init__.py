"""Inference in the GAC model: Langevin posteriors for training, plan choice for acting."""

from gac.inference.langevin import eval_mode, langevin
from gac.inference.planning import (
    ascend,
    exploit_objective,
    plan,
    return_conditioned_energy,
    sample_conditioned,
)
from gac.inference.posterior import posterior_energy, sample_posterior

__all__ = [
    "ascend",
    "eval_mode",
    "exploit_objective",
    "langevin",
    "plan",
    "posterior_energy",
    "return_conditioned_energy",
    "sample_conditioned",
    "sample_posterior",
]
