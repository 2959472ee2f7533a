"""Tiny sweep files shared by the sweep tests: trials of a few seconds on the tiny U-maze data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gac.sweep.spec import SweepSpec, parse_spec

TINY = {"model.d_model": 32, "model.n_layers": 1, "model.context_steps": 4,
        "train.batch_size": 8, "train.window": 8, "train.warmup_steps": 1, "train.steps": 4,
        "train.log_every": 2, "train.checkpoint_every": 2, "inference.n_starts": 2,
        "inference.ascent_steps": 2}
TINY_ONLINE = {"online.env_steps": 600, "online.stages": 1, "online.updates_per_stage": 2,
               "online.eval_episodes": 2, "online.n_envs": 2, "online.explore_steps": 2}
EVAL = {"episodes": 2, "seeds": [0], "n_envs": 2}


def tiny_spec(dataset: Path | str | None, name: str = "tiny", **extra: Any) -> SweepSpec:
    """Tiny `gac train` trials on ``dataset`` (None: the task's default dataset)."""
    data = {"name": name, "command": "train", "tasks": ["pointmaze-umaze-goal"], "seeds": [0, 1],
            "dataset": None if dataset is None else str(dataset), "set": dict(TINY),
            "eval": dict(EVAL), **extra}
    return parse_spec(data, source=f"<{name}>")
