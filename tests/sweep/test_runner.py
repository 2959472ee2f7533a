"""Sweeps without Ray: trials one after another in this process, resumable, failures recorded."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from sweep_helpers import TINY_ONLINE, tiny_spec
from typer.testing import CliRunner

from gac.cli import app
from gac.runs import make_trainer
from gac.sweep.report import build_report
from gac.sweep.runner import prepare, run_sweep
from gac.sweep.spec import SpecError, parse_spec
from gac.sweep.trial import STATUS, read_status, write_json


@pytest.fixture
def no_ray(monkeypatch):
    """The in-process path must not need Ray at all."""
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError


def quiet(*_):
    pass


def test_sweep_without_ray_runs_skips_finished_and_records_failures(tiny_maze_path, tmp_path,
                                                                    no_ray):
    spec = tiny_spec(tiny_maze_path, grid={"model.max_timestep": [300, 10]})  # 10 < 300 steps
    res = run_sweep(spec, root=tmp_path, log=quiet)  # auto: no Ray installed -> in-process
    assert res.backend == "local"
    good = "pointmaze-umaze-goal__model.max_timestep=300__s0"
    assert sorted(res.done) == [good, "pointmaze-umaze-goal__model.max_timestep=300__s1"]
    assert sorted(res.failed) == ["pointmaze-umaze-goal__model.max_timestep=10__s0",
                                  "pointmaze-umaze-goal__model.max_timestep=10__s1"]
    sweep_dir = tmp_path / "tiny"
    bad = read_status(sweep_dir / res.failed[0])
    assert bad["status"] == "failed" and "max_timestep=10" in bad["error"]
    assert "Traceback" in (sweep_dir / res.failed[0] / "error.txt").read_text()
    done = read_status(sweep_dir / good)
    assert done["result"]["steps"] == 4 and done["result"]["eval_episodes"] == 2
    assert "score" in done["result"] and done["result"]["curves"]["loss"]

    ckpt = sweep_dir / good / "checkpoint.pt"
    mtime = ckpt.stat().st_mtime_ns
    again = run_sweep(spec, root=tmp_path, retry_failed=False, log=quiet)
    assert sorted(again.skipped) == sorted(res.done + res.failed)
    assert ckpt.stat().st_mtime_ns == mtime  # finished trials are not touched

    text = build_report(sweep_dir)
    assert "| pointmaze-umaze-goal | model.max_timestep=300 | 2/2 |" in text
    assert "| pointmaze-umaze-goal | model.max_timestep=10 | 0/2 (2 failed) |" in text
    assert f"`{res.failed[0]}`: " in text and "max_timestep=10" in text
    for name in ("report.md", "report.json", "trials.csv", "scores.png", "curves.png"):
        assert (sweep_dir / name).exists(), name


def test_interrupted_trial_resumes_from_its_checkpoint(tiny_maze_path, tmp_path, no_ray):
    spec = tiny_spec(tiny_maze_path, seeds=[0])
    (trial, d), = prepare(spec, tmp_path)
    # Half a run, then "killed": a checkpoint at step 2 and a status left running.
    trainer = make_trainer(str(tiny_maze_path), d, task=trial.task, seed=0,
                           overrides=list(trial.overrides), progress=False)
    trainer.train(steps=2, progress=False)
    write_json(d / STATUS, {"trial": trial.id, "status": "running", "attempts": 1})

    res = run_sweep(spec, root=tmp_path, backend="local", log=quiet)
    status = res.statuses[trial.id]
    assert status["status"] == "done" and status["resumed"] and status["attempts"] == 2
    assert status["result"]["steps"] == 4
    # The resumed run ends exactly where an uninterrupted one does.
    ref = run_sweep(tiny_spec(tiny_maze_path, name="ref", seeds=[0]), root=tmp_path,
                    backend="local", log=quiet)
    assert not ref.failed
    a = torch.load(d / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "ref" / trial.id / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_trial_definition_is_refused(tiny_maze_path, tmp_path):
    prepare(tiny_spec(tiny_maze_path, seeds=[0]), tmp_path)
    changed = tiny_spec(tiny_maze_path, seeds=[0, 1], set={"train.steps": 8})
    with pytest.raises(SpecError, match="different overrides"):
        prepare(changed, tmp_path)
    assert not (tmp_path / "tiny" / "pointmaze-umaze-goal__s1").exists()  # refused: nothing written
    prepare(tiny_spec(tiny_maze_path, seeds=[0, 1]), tmp_path)  # adding seeds is fine


def test_finetune_sweep_on_an_offline_sweep_and_the_cli(tiny_maze_path, tmp_path, no_ray):
    runner = CliRunner()
    off = tmp_path / "off.yaml"
    tiny = tiny_spec(tiny_maze_path, name="off", seeds=[0])
    off.write_text(json.dumps({"name": "off", "tasks": ["pointmaze-umaze-goal"], "seeds": [0],
                               "dataset": str(tiny_maze_path), "set": tiny.set, "eval": tiny.eval}))
    root = ["--root", str(tmp_path / "sweeps")]
    result = runner.invoke(app, ["sweep", str(off), "--local", *root])
    assert result.exit_code == 0, result.output
    assert "| pointmaze-umaze-goal | default | 1/1 |" in result.output

    on = tmp_path / "on.yaml"
    on.write_text(json.dumps({
        "name": "on", "command": "finetune", "tasks": ["pointmaze-umaze-goal"], "seeds": [0, 1],
        "checkpoint_from": {"sweep": "off"}, "grid": {"online.delta_y": [5]},
        "set": TINY_ONLINE, "eval": tiny.eval}))
    result = runner.invoke(app, ["sweep", str(on), "--local", *root])
    # seed 0 fine-tunes the offline trial of seed 0; seed 1 has none and fails, with the reason
    assert result.exit_code == 1, result.output
    on_dir = tmp_path / "sweeps" / "on"
    ok = read_status(on_dir / "pointmaze-umaze-goal__online.delta_y=5__s0")
    assert ok["status"] == "done" and "gain" in ok["result"], ok
    assert len(ok["result"]["curves"]["score"]) == 2  # offline, then one online stage
    failed = read_status(on_dir / "pointmaze-umaze-goal__online.delta_y=5__s1")
    assert "no trial of sweep 'off'" in failed["error"]

    result = runner.invoke(app, ["report", str(on_dir)])
    assert result.exit_code == 0, result.output
    assert "Online gain" in result.output and "1/2 (1 failed)" in result.output
    summary = json.loads((on_dir / "report.json").read_text(), parse_constant=pytest.fail)
    assert summary["settings"][0]["score"]["std"] is None  # one seed: no std, and strict JSON
    result = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such sweep folder" in result.output


def test_cli_reports_spec_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [pointmaze-umaze-goal]\ngrid: {train.lr: [fast]}\n")
    result = CliRunner().invoke(app, ["sweep", str(bad), "--local", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot parse 'fast'" in result.output


def test_dry_run_lists_trials(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: dry\ntasks: [pointmaze-umaze-goal]\nseeds: [0, 1]\n")
    result = CliRunner().invoke(app, ["sweep", str(spec), "--dry-run", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "pending  pointmaze-umaze-goal__s1" in result.output
    assert not (tmp_path / "dry").exists()
    assert parse_spec({"tasks": ["pointmaze-umaze-goal"]}).name == "sweep"


def test_task_datasets_are_resolved_once_like_gac_train(tiny_maze_path, tmp_path, no_ray):
    from gac.paths import dataset_path
    from gac.tasks import get_task

    task = get_task("pointmaze-umaze-goal")
    cached = dataset_path(task.name, task.default_steps, 0)  # `gac train pointmaze-umaze-goal --seed 0`
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_maze_path, cached)  # stands in for the generated default dataset
    spec = tiny_spec(None, seeds=[0])
    res = run_sweep(spec, root=tmp_path, log=quiet)
    tid = "pointmaze-umaze-goal__s0"
    assert res.statuses[tid]["status"] == "done", res.statuses[tid]
    state = torch.load(tmp_path / "tiny" / tid / "checkpoint.pt", weights_only=False)
    assert state["metadata"]["source"] == str(cached)

    bad = tiny_spec("pointmaze-nowhere", name="bad", seeds=[0])
    res = run_sweep(bad, root=tmp_path, log=quiet)
    assert "dataset pointmaze-nowhere@0" in res.statuses[tid]["error"]
    assert "unknown task" in res.statuses[tid]["error"]
