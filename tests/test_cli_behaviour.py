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
