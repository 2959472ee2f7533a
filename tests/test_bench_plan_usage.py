"""benchmarks/plan_usage.py on tiny hopper and maze2d runs: the probes run and report what they
claim."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import numpy as np  # noqa: E402
from plan_usage import (  # noqa: E402
    load,
    mlp_references,
    nll_by_plan,
    replay_from_starts,
    returns_by_chain,
    segment_mse,
    step_goals,
)

from gac.data.datasets import make_dataset  # noqa: E402
from gac.data.store import DataError  # noqa: E402
from gac.runs import make_trainer  # noqa: E402

TINY = ["model.d_model=16", "model.n_layers=1", "model.context_steps=2", "model.prior=mlp",
        "model.mlp_hidden=16", "train.batch_size=4", "train.window=4", "train.steps=3"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("plans")
    data = make_dataset("hopper-medium", steps=600, out=root / "h.hdf5", progress=False)
    trainer = make_trainer(str(data), root / "run", overrides=TINY, progress=False)
    trainer.train(progress=False)
    return root / "run" / "checkpoint.pt", data


def test_probes_report_every_plan_and_group(tiny_run: tuple[Path, Path]):
    model, chains, store, task, window = load(tiny_run[0])  # data found from the metadata
    assert window == 4 and len(chains) == store.num_episodes
    nll = nll_by_plan(model, chains, store, windows=8, window=window)
    assert set(nll) == {"own chain", "shuffled chains", "prior sample", "zero"}
    assert all(math.isfinite(v) and v > 0 for v in nll.values())
    # With every chain equal, shuffling cannot change the decoded windows.
    same = nll_by_plan(model, chains[:1].expand_as(chains).clone(), store, 8, window)
    assert same["own chain"] == pytest.approx(same["shuffled chains"])
    groups = returns_by_chain(model, chains, store, task, episodes=1)
    assert list(groups) == ["best", "middle", "worst"]
    assert groups["best"]["data"] >= groups["middle"]["data"] >= groups["worst"]["data"]
    assert all(g["length"] >= 1 and math.isfinite(g["played"]) for g in groups.values())


def test_other_data_is_refused(tiny_run: tuple[Path, Path], tmp_path: Path):
    other = make_dataset("hopper-medium", steps=3000, out=tmp_path / "o.hdf5", progress=False)
    with pytest.raises(DataError, match="chains"):
        load(tiny_run[0], str(other))
    assert torch.is_tensor(load(tiny_run[0], str(tiny_run[1]))[1])


def test_fit_probe_reports_the_decoder_and_its_references(tiny_run: tuple[Path, Path]):
    model, chains, store, _, _ = load(tiny_run[0])
    fits = segment_mse(model, chains, store)
    assert set(fits) == {"all", "top tenth"}
    for group in fits.values():
        assert set(group) == {"own plan", "random plan", "constant"}
        assert all(math.isfinite(v) and v > 0 for v in group.values())
    assert step_goals(store) is None  # hopper files record no goals
    refs = mlp_references(store, None, steps=5)
    assert list(refs) == ["MLP, state"]
    # With a goal per step, a second MLP also sees each step's segment-end goal.
    goals = np.random.default_rng(0).normal(size=(store.num_steps, 2)).astype(np.float32)
    both = mlp_references(store, goals, steps=5)
    assert list(both) == ["MLP, state", "MLP, state and goal"]
    assert all(math.isfinite(v) for r in both.values() for v in r.values())


def test_replay_probe_plays_segments_from_their_own_starts(tiny_run: tuple[Path, Path],
                                                          tmp_path: Path):
    model, chains, store, task, _ = load(tiny_run[0])
    assert replay_from_starts(model, chains, store, task, 4) == {}  # hopper: no set_state
    data = make_dataset("maze2d-umaze", steps=3000, out=tmp_path / "m.hdf5", progress=False)
    make_trainer(str(data), tmp_path / "run", overrides=[*TINY, "model.context_steps=1"],
                 progress=False).train(progress=False)
    model, chains, store, task, _ = load(tmp_path / "run" / "checkpoint.pt")
    rows = replay_from_starts(model, chains, store, task, 4)
    assert "random" in rows and 1 <= rows["random"]["segments"] <= 4
    for row in rows.values():
        assert 0.0 <= row["own plan"] <= 1.0 and 0.0 <= row["another's plan"] <= 1.0
    # With every chain equal, another segment's plan is the segment's own: the same shares.
    same = replay_from_starts(model, chains[:1].expand_as(chains).clone(), store, task, 4)
    assert all(r["own plan"] == r["another's plan"] for r in same.values())
