"""benchmarks/training.py runs on every task family (it once knew mazes only) and reports the
figures it claims, the DT side included."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from training import measure  # noqa: E402

TINY = ["model.d_model=16", "model.n_layers=1", "model.context_steps=2", "model.prior=mlp",
        "model.mlp_hidden=16", "train.batch_size=4", "train.window=4"]


@pytest.mark.parametrize("task", ["pointmaze-umaze-goal", "maze2d-umaze", "hopper-medium"])
def test_every_family_measures(task: str):
    pytest.importorskip("d3rlpy")
    r = measure(task, updates=2, threads=torch.get_num_threads(), steps=1200, dt_steps=2,
                rounds=2, overrides=TINY)
    assert r["steps"] >= 1000 and r["family"] in {"pointmaze-goal", "maze2d", "locomotion"}
    for key in ("updates_per_s", "mfu", "rss_mib", "gac_s_per_step", "dt_s_per_step"):
        assert math.isfinite(r[key]) and r[key] > 0, key
    assert 0 < r["langevin_share"] < 1
