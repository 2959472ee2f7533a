"""benchmarks/offline_to_online.py end to end on tiny maze2d and locomotion files: the offline
GAC, its online variants and d3rlpy peers run a few steps, land in the log, the table and the
plot (a pipeline check, not a quality check)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("d3rlpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import offline_to_online  # noqa: E402

from gac.data.datasets import make_dataset  # noqa: E402


def run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["offline_to_online.py", *argv])
    offline_to_online.main()


def test_maze2d_variants_sweep_replanning_and_peers(tmp_path: Path, monkeypatch, capsys):
    data = make_dataset("maze2d-umaze", steps=2000, seed=0, out=tmp_path / "u.hdf5",
                        reference_episodes=2, progress=False)
    out = tmp_path / "o2o"
    argv = ["--task", "maze2d-umaze", "--seeds", "0", "--dataset", str(data),
            "--offline-steps", "2", "--env-steps", "600", "--stages", "2",
            "--updates-per-stage", "2", "--eval-episodes", "1", "--sweep", "5",
            "--variants", "auto,no-expl,refit-only",
            "--peers", "iql", "--peer-offline-steps", "2", "--peer-hidden", "8,8",
            "--gac-set", "online.n_envs=2", "--gac-set", "model.d_model=16",
            "--offline-root", str(tmp_path / "offline"), "--out", str(out)]
    run(monkeypatch, *argv)
    # A model override shapes the offline model too, which the online stages then continue.
    from gac.train.checkpoint import load_checkpoint

    (offline,) = (tmp_path / "offline").glob("gac-*/checkpoint.pt")
    assert load_checkpoint(offline)["config"]["model"]["d_model"] == 16
    # Its folder is named by the task preset's fingerprint: a changed preset trains anew.
    from maze2d import gac_version

    assert offline.parent.name.endswith(
        gac_version("maze2d-umaze", ["train.steps=2", "model.d_model=16"]))
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    methods = [r["method"] for r in rows]
    assert methods == ["gac auto", "gac auto, evaluated planning once", "gac no-expl",
                       "gac refit-only", "gac dy=5", "d3rlpy iql"]
    for r in rows:
        steps = [x for x, _ in r["curve"]]
        assert steps[0] == 0 and steps[-1] == 600, r["method"]
    assert [x for x, _ in rows[0]["curve"]] == [0, 300, 600]  # one point per stage
    # The control starts from the same offline model and evaluation, and collects nothing.
    control = rows[methods.index("gac refit-only")]
    assert control["offline"] == rows[0]["offline"] and control["collected_steps"] == 0
    # A control killed after its first refit (its row unlogged, its checkpoint left) reruns.
    (control_dir,) = out.glob("*-gac-refit-only-*")
    assert (control_dir / "checkpoint.pt").exists()
    again = offline_to_online.refit_only(offline, control_dir, [
        "online.stages=1", "online.updates_per_stage=1", "online.eval_episodes=1",
        "online.n_envs=2"])
    assert again["offline"] == control["offline"] and len(again["curve"]) == 2
    assert len(rows[-1]["curve"]) == 3  # the peer is evaluated after each stage too
    auto = rows[0]["records"]
    assert all("y_plus" in s and "explore_return" in s for s in auto[1:])
    # Stage 1's y_ref is on the episode scale: from the offline policy's own evaluation episode.
    assert auto[1]["y_ref"] == pytest.approx(auto[0]["return"])
    md = (out / "maze2d-umaze.md").read_text()
    assert "600 online environment steps in 2 stages" in md and "| d3rlpy iql |" in md
    assert "re-planning" in md and "within 10%" in md and "GAC (no-expl) gain" in md
    assert (out / "maze2d-umaze-curves.png").stat().st_size > 0
    # A rerun with the same budget reuses every row; --report only tabulates.
    capsys.readouterr()
    run(monkeypatch, *argv, "--report")
    assert len((out / "results.jsonl").read_text().splitlines()) == len(rows)
    assert "| gac dy=5 |" in capsys.readouterr().out
    # Another GAC override leaves the peers' rows valid: they never saw it.
    run(monkeypatch, *argv, "--gac-set", "online.explore_steps=2", "--report")
    assert "| d3rlpy iql |" in capsys.readouterr().out


def test_locomotion_auto_and_rebrac(tmp_path: Path, monkeypatch):
    data = make_dataset("hopper-medium-replay", steps=400, seed=0, out=tmp_path / "h.hdf5",
                        progress=False)
    out = tmp_path / "o2o"
    run(monkeypatch, "--task", "hopper-medium-replay", "--seeds", "0", "--dataset", str(data),
        "--offline-steps", "2", "--env-steps", "100", "--stages", "2", "--updates-per-stage", "2",
        "--eval-episodes", "1", "--variants", "auto", "--peers", "rebrac",
        "--peer-offline-steps", "2", "--peer-hidden", "8,8", "--gac-set", "online.n_envs=2",
        "--offline-root", str(tmp_path / "offline"), "--out", str(out))
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # Locomotion plans once (no re-planning row); the peer gets the same environment steps.
    assert [r["method"] for r in rows] == ["gac auto", "d3rlpy rebrac"]
    assert all(r["env_steps"] == 100 for r in rows)  # the budget: what a rerun matches on
    assert rows[1]["collected_steps"] == 100 and rows[0]["collected_steps"] >= 100
    md = (out / "hopper-medium-replay.md").read_text()
    assert "spread over seeds" in md and "IQL" in md
    # A report reuses both rows, although hopper's episodes made GAC collect other step counts.
    run(monkeypatch, "--task", "hopper-medium-replay", "--seeds", "0", "--dataset", str(data),
        "--offline-steps", "2", "--env-steps", "100", "--stages", "2", "--updates-per-stage", "2",
        "--eval-episodes", "1", "--variants", "auto", "--peers", "rebrac",
        "--peer-offline-steps", "2", "--peer-hidden", "8,8", "--gac-set", "online.n_envs=2",
        "--offline-root", str(tmp_path / "offline"), "--out", str(out), "--report")
    assert "| gac auto |" in (out / "hopper-medium-replay.md").read_text()
    # Another refit budget in the same folder is a run of its own, not a resume of the first
    # (whose checkpoint holds the other updates_per_stage).
    run(monkeypatch, "--task", "hopper-medium-replay", "--seeds", "0", "--dataset", str(data),
        "--offline-steps", "2", "--env-steps", "100", "--stages", "2", "--updates-per-stage", "3",
        "--eval-episodes", "1", "--variants", "auto", "--gac-set", "online.n_envs=2",
        "--offline-root", str(tmp_path / "offline"), "--out", str(out))
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["updates_per_stage"] for r in rows if r["method"] == "gac auto"] == [2, 3]


def test_targets_judge_every_collecting_variant():
    """The target lines judge no exploration as well as the automatic delta-y: either can be a
    task's preset (hopper's is no exploration)."""
    def row(method: str, seed: int, offline: float, final: float) -> dict:
        return {"method": method, "seed": seed, "offline": offline, "final": final}

    rows = [row("gac auto", s, 26.0, f) for s, f in enumerate((25.0, 30.0, 28.0))]
    rows += [row("gac no-expl", s, 26.0, f) for s, f in enumerate((36.0, 35.0, 37.0))]
    rows += [row("d3rlpy iql", s, 5.0, f) for s, f in enumerate((12.0, 13.0, 14.0))]
    lines = offline_to_online.targets("hopper-medium-replay", rows, [])
    auto, no_expl = lines
    # auto: +1.7 is inside its spread (2.1) and below IQL's +8.0; no-expl: +10.0, spread 0.8.
    assert auto.startswith("GAC (auto) gain +1.7") and auto.endswith("NOT met")
    assert no_expl.startswith("GAC (no-expl) gain +10.0") and no_expl.endswith(": met")
    # Without IQL, a gain beyond the spread suffices; without either variant nothing is judged.
    assert offline_to_online.targets("hopper-medium-replay", rows[3:6], [])[0].endswith(": met")
    assert offline_to_online.targets("hopper-medium-replay", rows[6:], [])[0].startswith("no GAC")
