"""Smoke tests of `gac data make` and `gac data info`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gac.cli import app

runner = CliRunner()


def test_make_then_info(tmp_path):
    out = tmp_path / "umaze.hdf5"
    args = ["data", "make", "pointmaze-umaze-goal", "--steps", "3000", "--out", str(out),
            "--reference-episodes", "2"]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    assert out.exists() and "wrote" in made.output and "R_expert" in made.output

    before = out.read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output and str(out) in again.output
    assert out.read_bytes() == before
    replaced = runner.invoke(app, [*args[:-1], "1", "--seed", "1", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert out.read_bytes() != before

    png = tmp_path / "hist.png"
    info = runner.invoke(app, ["data", "info", str(out), "--hist", str(png)])
    assert info.exit_code == 0, info.output
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "episodes" in info.output and "pointmaze-umaze-goal" in info.output

    as_json = runner.invoke(app, ["data", "info", str(out), "--json"])
    summary = json.loads(as_json.stdout)
    assert summary["steps"] == 3000 and summary["metadata"]["seed"] == 1


def test_info_on_broken_files_fails_cleanly(tmp_path):
    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(b"this is not HDF5 at all")
    result = runner.invoke(app, ["data", "info", str(broken)])
    assert result.exit_code == 2
    assert "error:" in result.output and str(broken) in result.output and "HDF5" in result.output
    assert "Traceback" not in result.output

    missing = runner.invoke(app, ["data", "info", str(tmp_path / "nope.hdf5")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_make_unknown_task_fails_cleanly(tmp_path):
    result = runner.invoke(app, ["data", "make", "pointmaze-nowhere", "--out",
                                 str(tmp_path / "x.hdf5")])
    assert result.exit_code == 2 and "unknown task" in result.output
