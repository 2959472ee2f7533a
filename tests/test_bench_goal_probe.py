"""benchmarks/goal_probe.py on a tiny maze2d-umaze run: the episode statistics count what they
claim, the decoder field has one action per plan at each probed point, and the script runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from goal_probe import corridor_distances, decoder_field, episode_stats, late_cells, main  # noqa: E402

from gac.data.datasets import make_dataset  # noqa: E402
from gac.data.store import Episode  # noqa: E402
from gac.evaluation.plots import cell_shares  # noqa: E402
from gac.runs import load_policy, make_trainer  # noqa: E402

TINY = ["model.d_model=16", "model.n_layers=1", "model.mlp_hidden=16", "model.state_hidden=16",
        "train.batch_size=4", "train.window=4", "train.steps=3"]


def test_episode_stats_count_arrivals_and_stays():
    goal = np.array([1.0, 1.0])
    far = np.zeros((10, 4), np.float32)
    come = np.zeros((10, 4), np.float32)
    come[4:, :2] = goal  # within the radius from step 4 on, except step 7
    come[7, :2] = [3.0, 3.0]
    eps = [Episode(o, np.zeros((10, 2), np.float32), None, False, 0.0) for o in (far, come)]
    reached, first, stay = episode_stats(eps, goal)
    assert reached == 1 and first == [4] and stay == [pytest.approx(5 / 6)]


def test_field_and_script_on_a_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture):
    data = make_dataset("maze2d-umaze", steps=1500, out=tmp_path / "u.hdf5", progress=False)
    make_trainer(str(data), tmp_path / "run", overrides=TINY, progress=False).train(progress=False)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    model, cfg, _, bank = load_policy(ckpt)
    field = decoder_field(model, bank, cfg.inference, np.array([1.0, 1.0]))
    assert len(field) == 5 and (1.0, 1.0) in field and (0.5, 1.0) in field
    for by_plans in field.values():
        assert by_plans["all plans"].shape == (len(bank.returns), 2)
        assert 1 <= len(by_plans["arrivals"]) <= len(bank.returns)
    main([str(ckpt), "--episodes", "2", "--plot", str(tmp_path / "where.png")])
    out = capsys.readouterr().out
    assert "maze2d-umaze" in out and "reach" in out and "arrivals" in out
    assert "second half" in out and (tmp_path / "where.png").stat().st_size > 0


def test_where_episodes_stay_counts_cells_and_corridor_distances():
    # A U: the goal at (1, 1); (1, 3) is 4 cells away around the wall at (1, 2).
    walls = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]], bool)
    dist = corridor_distances(walls, (1, 1))
    assert dist[(1, 1)] == 0 and dist[(2, 2)] == 2 and dist[(1, 3)] == 4 and (1, 2) not in dist
    stall = np.tile([[1.1, 2.9, 0.0, 0.0]], (10, 1)).astype(np.float32)
    stall[:5, :2] = [2.0, 2.0]  # first half elsewhere, second half at (1, 3)
    eps = [Episode(o, np.zeros((10, 2), np.float32), None, False, 0.0) for o in (stall, stall)]
    assert late_cells(eps) == {(1, 3): 2}
    shares = cell_shares(stall[:, :2], walls.shape)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[1, 3] == pytest.approx(0.5) and shares[2, 2] == pytest.approx(0.5)
