"""benchmarks/maze2d.py end to end on a tiny maze2d-umaze file: GAC and BC train a few steps, play
an episode and land in the table; a rerun reuses the logged rows, and a GAC row logged under
another training config is not reused (a pipeline check, not a quality check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("d3rlpy")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "maze2d.py"
TINY = ["--gac-set", "model.d_model=16", "--gac-set", "model.n_layers=1",
        "--gac-set", "model.mlp_hidden=16", "--gac-set", "model.state_hidden=16",
        "--gac-set", "train.batch_size=4", "--gac-set", "train.window=4"]


def bench(out: Path, *extra: str) -> str:
    args = [sys.executable, str(SCRIPT), "--tasks", "maze2d-umaze", "--seeds", "0", "--steps", "2",
            "--episodes", "1", "--data-steps", "1500", "--algos", "gac,gac-once,bc",
            "--out", str(out), *TINY, *extra]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_runs_reuses_and_retrains_when_the_config_changed(tmp_path: Path):
    text = bench(tmp_path)
    assert "| maze2d-umaze |" in text and "| maze2d-umaze (D4RL scale) |" in text
    log = tmp_path / "results.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["algo"] for r in rows) == ["bc", "gac", "gac-once"]
    gac = {r["algo"]: r for r in rows if r["algo"].startswith("gac")}
    assert gac["gac"]["version"] == gac["gac-once"]["version"]  # one trained run, two evaluations
    assert gac["gac"]["inference"] != gac["gac-once"]["inference"]
    assert len(list(tmp_path.glob(f"gac-*-{gac['gac']['version']}/checkpoint.pt"))) == 1
    # the per-seed chart, named by GAC's fingerprint since the run has --gac-set overrides
    chart = tmp_path / f"maze2d-umaze-2-{gac['gac']['version']}-scores.png"
    assert chart.stat().st_size > 0

    bench(tmp_path)  # everything logged: nothing runs again
    assert len(log.read_text().splitlines()) == 3
    # An override that leaves the config as it was (the preset's own learning rate) names the
    # same runs: rows are matched by what trained them, not by how the overrides were spelt.
    same = bench(tmp_path, "--gac-set", "train.lr=0.001")
    assert len(log.read_text().splitlines()) == 3
    assert "| maze2d-umaze | " in same and "| maze2d-umaze | - |" not in same  # GAC's row shown

    stale = [{**r, "version": "00000000"} if r["algo"] == "gac" else r for r in rows]
    log.write_text("".join(json.dumps(r) + "\n" for r in stale))  # as if an older preset's
    bench(tmp_path)
    again = [json.loads(line) for line in log.read_text().splitlines()][3:]
    assert [r["algo"] for r in again] == ["gac"]  # only the stale row is made again
    assert again[0]["version"] == gac["gac"]["version"]
