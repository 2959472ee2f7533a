"""The behaviour-policy commands fail clearly on bad input (with or without stable-baselines3)."""

from __future__ import annotations

from typer.testing import CliRunner

from gac.cli import app


def test_behaviour_commands_reject_unknown_bodies():
    runner = CliRunner()
    for cmd in (["behaviour", "train", "nosuchbody", "--budget", "10"],
                ["behaviour", "export", "nosuchbody"]):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 2, result.output
        assert "error:" in result.output


def test_no_resume_refuses_a_folder_that_holds_a_training_run(tmp_path):
    (tmp_path / "state.json").write_text("{}")
    result = CliRunner().invoke(app, ["behaviour", "train", "hopper", "--out-dir", str(tmp_path),
                                      "--no-resume"])
    assert result.exit_code == 2 and "holds a training run" in result.output


def test_the_numpy_actor_knows_nothing_of_tasks():
    import ast
    from pathlib import Path

    import gac.data.behaviour.actor as actor
    import gac.data.behaviour.store as store
    from gac.tasks.locomotion import HORIZON

    assert actor.HORIZON == HORIZON
    for module in (actor, store):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(m and m.startswith("gac.tasks") for m in imported), module.__name__
