"""Smoke tests: every training/evaluation entry point runs for a few steps (CleanRL-style)."""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from gac.cli import app
from gac.runs import evaluate_checkpoint
from gac.train.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()
TINY = ["--set", "model.d_model=32", "--set", "train.batch_size=8", "--set", "train.window=8",
        "--set", "train.warmup_steps=1"]


def test_train_then_eval(tiny_maze_path, tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_maze_path), "--steps", "4", "--run-dir",
                                 str(run_dir), "--eval-episodes", "2", *TINY])
    assert result.exit_code == 0, result.output
    for name in ("checkpoint.pt", "metrics.csv", "config.json", "learning_curve.png"):
        assert (run_dir / name).exists(), name
    assert "score" in result.output

    again = runner.invoke(app, ["train", str(tiny_maze_path), "--steps", "4", "--run-dir",
                                str(run_dir), *TINY])
    assert again.exit_code == 2 and "--resume" in again.output

    more = runner.invoke(app, ["train", str(tiny_maze_path), "--steps", "6", "--run-dir",
                               str(run_dir), "--resume", "--eval-episodes", "0", *TINY])
    assert more.exit_code == 0, more.output
    assert "resumed at step 4" in more.output and "step 6" in more.output

    predicted = {}
    for mode in ("exploit", "random", "guided", "elite", "refine"):
        ev = runner.invoke(app, ["eval", str(run_dir / "checkpoint.pt"), "--episodes", "2",
                                 "--seeds", "0", "--envs", "2", "--mode", mode,
                                 "--set", "inference.ascent_steps=2",
                                 "--set", "inference.langevin_steps=2"])
        assert ev.exit_code == 0, ev.output
        # The printed numbers are those of the mode's evaluation, not of some other mode's.
        got = re.search(rf"{mode}: normalised score (\S+) .*mean return (\S+), predicted "
                        rf"(\S+)\n", ev.output)
        assert got, ev.output
        s = evaluate_checkpoint(run_dir / "checkpoint.pt", 2, [0], mode, 2,
                                ["inference.ascent_steps=2", "inference.langevin_steps=2"],
                                progress=False).summary()
        assert [float(x) for x in got.groups()] == [round(s[k], 2 if k != "score_mean" else 1)
                                                     for k in ("score_mean", "return_mean",
                                                               "predicted_return_mean")]
        predicted[mode] = s["predicted_return_mean"]
    assert len(set(predicted.values())) == len(predicted), predicted  # five different plans

    # Evaluation runs on one torch thread unless told otherwise, as training does.
    ckpt = str(run_dir / "checkpoint.pt")
    torch.set_num_threads(2)
    ev = runner.invoke(app, ["eval", ckpt, "--episodes", "1", "--seeds", "0", "--envs", "1"])
    assert ev.exit_code == 0, ev.output
    assert torch.get_num_threads() == 1
    bad = runner.invoke(app, ["eval", ckpt, "--threads", "0"])
    assert bad.exit_code == 2 and "--threads 0" in bad.output

    online_dir = tmp_path / "online"
    ft = runner.invoke(app, ["finetune", str(run_dir / "checkpoint.pt"), "--env-steps", "600",
                             "--stages", "1", "--run-dir", str(online_dir),
                             "--set", "online.updates_per_stage=2", "--set", "online.eval_episodes=2",
                             "--set", "online.n_envs=2", "--set", "online.explore_steps=2",
                             "--set", "inference.ascent_steps=2"])
    assert ft.exit_code == 0, ft.output
    assert "stage 1" in ft.output and "exploration on" in ft.output  # the preset's default
    for name in ("checkpoint.pt", "report.md", "online.png"):
        assert (online_dir / name).exists(), name
    again = runner.invoke(app, ["finetune", str(run_dir / "checkpoint.pt"), "--run-dir",
                                str(online_dir)])
    assert again.exit_code == 2 and "--resume" in again.output
    quiet = runner.invoke(app, ["finetune", str(run_dir / "checkpoint.pt"), "--env-steps", "600",
                                "--stages", "1", "--no-exploration", "--run-dir",
                                str(tmp_path / "online-no-expl"),
                                "--set", "online.updates_per_stage=1",
                                "--set", "online.eval_episodes=1", "--set", "online.n_envs=2"])
    assert quiet.exit_code == 0, quiet.output
    assert "exploration off" in quiet.output


def test_eval_rejects_a_broken_checkpoint(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["eval", str(bad)])
    assert result.exit_code == 2
    assert "corrupted" in result.output


def test_help_explains_itself():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("run", "train", "eval", "data", "tasks"):
        assert cmd in result.output


def test_eval_help_lists_the_registered_modes():
    from gac.inference import MODES

    result = runner.invoke(app, ["eval", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    for name in MODES:
        assert f"{name} (" in text, name


def test_run_pipeline_offline_then_online(tmp_path, monkeypatch):
    """`gac run` on its default task, maze2d-umaze: the preset's own plan choice (``arrive``)
    against random plans on both scales, then the online stages; a rerun resumes."""
    from gac.data.datasets import make_cached
    from gac.paths import dataset_path
    from gac.tasks import get_task

    monkeypatch.setenv("GAC_CACHE", str(tmp_path / "cache"))
    task = get_task("maze2d-umaze")
    # A small file where the task's default (D4RL's 1M steps) would be made.
    make_cached(task.name, 0, dataset_path(task.name, task.default_steps, 0), False, steps=3000)
    run_dir = tmp_path / "pipeline"
    args = ["run", "--steps", "3", "--episodes", "2", "--run-dir", str(run_dir),
            "--online-env-steps", "600", *TINY, "--set", "online.stages=1",
            "--set", "online.updates_per_stage=2", "--set", "online.eval_episodes=2",
            "--set", "online.n_envs=2", "--set", "online.explore_steps=2",
            "--set", "inference.ascent_steps=2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "[4/4] online stages: 600" in result.output and "score before online stages" in result.output
    assert "maze2d-umaze" in result.output and "arrive and random plans" in result.output
    results = (run_dir / "results.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith(("| arrive ", "| random "))]
    assert len(rows) == 2 and "D4RL scale" in results
    assert all(len(row.strip("|").split("|")) == 7 for row in rows)
    for name in ("checkpoint.pt", "results.md", "learning_curve.png", "online/report.md",
                 "online/online.png"):
        assert (run_dir / name).exists(), name
    before = (run_dir / "online" / "report.md").read_text()
    again = runner.invoke(app, args)  # a finished pipeline resumes to the same report
    assert again.exit_code == 0, again.output
    scores = re.compile(r"score before online stages (\S+), after (\S+) ")
    assert scores.search(again.output).groups() == scores.search(result.output).groups()
    assert (run_dir / "online" / "report.md").read_text() == before
    table = re.compile(r"^\|.*\|$", re.M)  # the results table's rows, wall time aside
    rows = table.findall(result.output)
    assert len(rows) >= 4 and table.findall(again.output) == rows


def test_run_rejects_a_bad_override(tmp_path):
    result = runner.invoke(app, ["run", "--run-dir", str(tmp_path / "r"), "--set", "train.nope=1"])
    assert result.exit_code == 2
    assert "no field 'nope'" in result.output


def test_a_diverged_run_fails_and_its_weights_are_refused(tiny_maze_path, tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_maze_path), "--steps", "6", "--run-dir",
                                 str(run_dir), "--eval-episodes", "2", *TINY,
                                 "--set", "train.lr=1e30", "--set", "train.checkpoint_every=1"])
    assert result.exit_code == 2, result.output
    assert re.search(r"training diverged at step \d+: the .* is not finite", result.output)
    assert "score" not in result.output
    state = load_checkpoint(run_dir / "checkpoint.pt")  # the last good one
    key = next(iter(state["model"]))
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    save_checkpoint(state, run_dir / "checkpoint.pt")
    ev = runner.invoke(app, ["eval", str(run_dir / "checkpoint.pt"), "--episodes", "2",
                             "--seeds", "0", "--envs", "2"])
    assert ev.exit_code == 2 and "NaN/inf values" in ev.output and key in ev.output


@pytest.mark.parametrize("args,message", [
    (["--episodes", "0"], "--episodes 0"),
    (["--seeds", ""], "--seeds ''"),
    (["--seeds", "a,b"], "--seeds 'a,b'"),
    (["--set", "inference.mode=exploitt"], "unknown inference mode 'exploitt'; expected exploit"),
])
def test_eval_rejects_bad_arguments(tmp_path, args, message):
    result = runner.invoke(app, ["eval", str(tmp_path / "missing.pt"), *args])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_on_a_missing_device_fails_clearly(tiny_maze_path, tmp_path):
    result = runner.invoke(app, ["train", str(tiny_maze_path), "--run-dir", str(tmp_path / "r"),
                                 *TINY, "--set", "train.device=cuda"])
    assert result.exit_code == 2 and "train.device='cuda': CUDA is not available" in result.output
    result = runner.invoke(app, ["train", str(tiny_maze_path), "--run-dir", str(tmp_path / "r"),
                                 *TINY, "--set", "train.steps=0"])
    assert result.exit_code == 2 and "train.steps=0: must be at least 1" in result.output
