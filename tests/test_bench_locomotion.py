"""benchmarks/locomotion.py end to end on a tiny hopper file: GAC, DT, IQL and BC train a few steps,
play an episode and land in the table (a pipeline check, not a quality check)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("d3rlpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from locomotion import (  # noqa: E402
    current_rows,
    gac_version,
    inference_version,
    paired_difference,
    run_gac,
    run_peer,
    table,
)

from gac.data.datasets import make_dataset  # noqa: E402

TINY_GAC = ["model.d_model=16", "model.n_layers=1", "model.context_steps=2", "model.prior=mlp",
            "model.mlp_hidden=16", "train.batch_size=4", "train.window=4", "inference.n_starts=2",
            "inference.ascent_steps=2"]


@pytest.fixture(scope="module")
def tiny_hopper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset("hopper-medium", steps=400, out=tmp_path_factory.mktemp("loco") / "h.hdf5",
                        progress=False)


def test_every_method_trains_plays_and_reports(tiny_hopper: Path, tmp_path: Path):
    rows = []
    for algo in ("dt", "iql", "bc"):
        out = run_peer(algo, str(tiny_hopper), seed=0, steps=3, episodes=1)
        rows.append({"algo": algo, **out})
    rows.append({"algo": "gac", **run_gac(str(tiny_hopper), 0, 3, 1, tmp_path, TINY_GAC)})
    # gac-elite and gac-refine reuse the trained run: more evaluations, no more training
    for mode in ("elite", "refine"):
        rows.append({"algo": f"gac-{mode}",
                     **run_gac(str(tiny_hopper), 0, 3, 1, tmp_path, TINY_GAC, mode=mode)})
    for r in rows:
        assert len(r["returns"]) == 1 and math.isfinite(r["returns"][0])
        assert r["train_s"] > 0 and math.isfinite(r["score"])
        r.update(dataset=str(tiny_hopper), seed=0, steps=3, episodes=1, score=r["returns"][0])
    assert len(list(tmp_path.glob("gac-h-s0-3-*/checkpoint.pt"))) == 1  # named by its config
    gacs = rows[3:]
    assert len({r["version"] for r in gacs}) == 1 and len({r["inference"] for r in gacs}) == 3
    text = table(rows, [str(tiny_hopper)], ["gac", "gac-elite", "gac-refine", "dt", "iql", "bc"], 3, 1)
    assert str(tiny_hopper) in text and "GAC / DT time per gradient step" in text
    assert "| **average** |" in text
    assert all(line.count("|") == text.splitlines()[0].count("|")
               for line in text.splitlines() if line.startswith("|"))  # every row is whole


def test_paired_difference_pairs_seeds_and_brackets_the_mean():
    rows = [{"algo": a, "dataset": "d", "seed": s, "score": v}
            for a, vals in (("gac", [10.0, 12.0, 14.0, 20.0]), ("dt", [9.0, 10.0, 13.0]))
            for s, v in enumerate(vals)]  # gac's seed 3 has no dt partner: left out
    mean, low, high = paired_difference(rows, "d", "gac", "dt")
    assert mean == pytest.approx(4 / 3)  # differences 1, 2, 1
    assert low < mean < high and high - mean == pytest.approx(mean - low)
    assert high - low == pytest.approx(2 * 4.303 * (1 / 3) ** 0.5 / 3 ** 0.5, rel=1e-3)
    assert paired_difference(rows[:1] + rows[4:5], "d", "gac", "dt") is None  # one pair only


def test_unknown_peer_is_refused(tiny_hopper: Path):
    with pytest.raises(ValueError, match="unknown peer"):
        run_peer("cql", str(tiny_hopper), 0, 1, 1)


def test_current_rows_are_per_dataset_budget_and_plan_mode():
    # A budget's fingerprint differs from another's: a 3,000-step row must not be judged by the
    # 1,000-step fingerprint of the same dataset (that re-ran finished runs).
    def gac(steps: int, version: str | None = None, algo: str = "gac", mode: str | None = None) -> dict:
        sets = [f"train.steps={steps}"]
        return {"algo": algo, "dataset": "hopper-medium", "seed": 0, "steps": steps,
                "version": version or gac_version("hopper-medium", sets),
                "inference": inference_version("hopper-medium", sets, mode)}

    rows = [gac(1000), gac(3000),
            gac(3000, "00000000"),  # an older preset's run
            {"algo": "dt", "dataset": "hopper-medium", "seed": 1, "steps": 1000},  # seed 0's file
            {"algo": "dt", "dataset": "hopper-medium", "seed": 1, "steps": 1000, "data_seed": 1},
            gac(1000, algo="gac-elite", mode="elite"),
            gac(1000, algo="gac-refine", mode="elite")]  # evaluated with other plans than its own
    assert current_rows(rows) == [rows[0], rows[1], rows[4], rows[5]]
    again = {**rows[0], "score": 1.0}  # the same run logged twice: counted once, the later row
    assert current_rows([*rows, again]) == [again, rows[1], rows[4], rows[5]]
    # Inference settings name the evaluation, not the trained run's folder.
    assert gac_version("hopper-medium", ["inference.mode=refine"]) == gac_version("hopper-medium")
