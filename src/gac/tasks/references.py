"""Reference returns and the normalised score 100 * (R - R_random) / (R_expert - R_random)."""

from __future__ import annotations

import numpy as np

# D4RL's published reference returns (d4rl/infos.py: REF_MIN_SCORE, REF_MAX_SCORE). They apply
# to D4RL's own environments; gac's locally generated datasets carry their own measured values.
D4RL_REF: dict[str, tuple[float, float]] = {
    "maze2d-umaze-v1": (23.85, 161.86),
    "maze2d-medium-v1": (13.13, 277.39),
    "maze2d-large-v1": (6.7, 273.99),
    "maze2d-umaze-dense-v1": (68.537689, 193.66285642381482),
    "maze2d-medium-dense-v1": (44.264742, 297.4552547777125),
    "maze2d-large-dense-v1": (30.569041, 303.4857382709002),
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


# Published D4RL-scale scores on maze2d (v1, sparse), as the GAC/LPT papers report them: LPT-EI
# (the LPT paper), IQL, DT and CQL (the tables LPT compares with). Drawn beside gac's own scores
# by benchmarks/maze2d.py; they come from D4RL's own files and physics, so they are a yardstick,
# not a same-setting comparison.
PUBLISHED_MAZE2D: dict[str, dict[str, float]] = {
    "maze2d-umaze": {"LPT-EI": 70.6, "IQL": 47.4, "DT": 31.0, "CQL": 5.7},
    "maze2d-medium": {"LPT-EI": 26.7, "IQL": 34.9, "DT": 8.0, "CQL": 5.0},
    "maze2d-large": {"LPT-EI": 45.9, "IQL": 58.6, "DT": 2.0, "CQL": 12.5},
}


def d4rl_reference(dataset: str) -> tuple[float, float]:
    """D4RL's (R_random, R_expert) for a dataset name such as ``hopper-medium-v2``."""
    if dataset in D4RL_REF:
        return D4RL_REF[dataset]
    body = dataset.split("-")[0]
    if body in D4RL_REF:
        return D4RL_REF[body]
    raise KeyError(f"no D4RL reference returns for {dataset!r}; known: {sorted(D4RL_REF)}")


def normalized_score(returns: float | np.ndarray, ref_random: float, ref_expert: float
                     ) -> float | np.ndarray:
    if ref_expert == ref_random:
        raise ValueError("reference returns are equal: the normalised score is undefined")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_random) / (ref_expert - ref_random)
