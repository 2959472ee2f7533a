"""benchmarks/chain_grad.py runs end to end; --shared-set and --exact-set reach their own run only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "chain_grad.py"
TINY = ["model.d_model=16", "model.n_layers=1", "model.mlp_hidden=16", "train.batch_size=4",
        "train.window=4"]


def test_per_scheme_overrides_reach_their_own_run_only():
    sets = [arg for s in TINY for arg in ("--set", s)]
    out = subprocess.run([sys.executable, str(SCRIPT), "--task", "maze2d-umaze", "--updates", "2",
                          "--rounds", "1", "--steps", "1200", *sets,
                          "--shared-set", "train.langevin_steps=3",
                          "--exact-set", "train.langevin_steps=2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "exact   (2 Langevin steps/update)" in out
    assert "shared  (3 Langevin steps/update)" in out
    assert "shared / exact updates/s:" in out
