"""Scores of a trained policy: normalised return, mean +- std over episodes and over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gac.config import InferenceConfig
from gac.inference import PlanBank
from gac.model import GACModel
from gac.rollout import make_envs, rollout
from gac.tasks import normalized_score


@dataclass
class EvalResult:
    mode: str
    episodes_per_seed: int
    seeds: list[int]
    returns: np.ndarray  # (seeds, episodes)
    predicted: np.ndarray  # (seeds, episodes) the plans' predicted returns
    ref: tuple[float, float] | None
    extra: dict = field(default_factory=dict)
    # D4RL's published references, where they differ from ``ref`` (maze2d: gac measures its own
    # on PointMaze physics, and D4RL's give the approximate D4RL-scale score beside them).
    d4rl_ref: tuple[float, float] | None = None

    @property
    def scores(self) -> np.ndarray:
        if self.ref is None:
            return self.returns
        return np.asarray(normalized_score(self.returns, *self.ref))

    def summary(self) -> dict[str, float]:
        per_seed = self.scores.mean(1)
        return {
            "score_mean": float(per_seed.mean()),
            "score_std_seeds": float(per_seed.std()),
            "score_std_episodes": float(self.scores.std()),
            "return_mean": float(self.returns.mean()),
            "predicted_return_mean": float(self.predicted.mean()),
            **({"d4rl_score_mean": float(normalized_score(self.returns.mean(1), *self.d4rl_ref).mean())}
               if self.d4rl_ref is not None else {}),
        }


def evaluate(model: GACModel, task, episodes: int, seeds: list[int], icfg: InferenceConfig,
             ref: tuple[float, float] | None, n_envs: int = 16,
             target_return: float | None = None, progress: bool = False,
             bank: PlanBank | None = None) -> EvalResult:
    """``episodes`` episodes per seed of the policy planning with ``icfg`` (``bank``: the
    training episodes' plans, for the modes that choose among them)."""
    returns, predicted = [], []
    envs = make_envs(task.make_env, min(n_envs, episodes))  # created once, reused across seeds
    for seed in seeds:
        out = rollout(model, envs, task.horizon, episodes, seed=10_000 * (seed + 1), icfg=icfg,
                      target_return=target_return, progress=progress, bank=bank)
        returns.append(out["returns"])
        predicted.append(out["predicted"])
    for env in envs:
        env.close()
    d4rl = task.d4rl_references()
    return EvalResult(icfg.mode, episodes, list(seeds), np.array(returns), np.array(predicted),
                      ref, d4rl_ref=d4rl if d4rl is not None and d4rl != ref else None)
