"""benchmarks/rollout.py runs on a preset with random weights and on a trained maze2d
checkpoint (whose bank mode needs the training plans), and refuses a bank mode without one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from rollout import main  # noqa: E402

from gac.data.datasets import make_dataset  # noqa: E402
from gac.runs import make_trainer  # noqa: E402

TINY = ["model.d_model=16", "model.n_layers=1", "model.mlp_hidden=16", "model.state_hidden=16",
        "train.batch_size=4", "train.window=4", "train.steps=3"]


def test_rollout_benchmark_on_a_preset_and_on_a_checkpoint(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture):
    main(["--horizon", "6", "--rounds", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "pointmaze-umaze-goal" in out and "random weights" in out and "cached/raw" in out
    with pytest.raises(SystemExit, match="pass --checkpoint"):
        main(["--task", "maze2d-umaze", "--horizon", "6", "--rounds", "1"])
    data = make_dataset("maze2d-umaze", steps=1500, out=tmp_path / "u.hdf5", progress=False)
    make_trainer(str(data), tmp_path / "run", overrides=TINY, progress=False).train(progress=False)
    ckpt = str(tmp_path / "run" / "checkpoint.pt")
    main(["--checkpoint", ckpt, "--horizon", "12", "--rounds", "1", "--threads", "1",
          "--clock", "cpu"])
    out = capsys.readouterr().out
    assert "maze2d-umaze" in out and "arrive (a bank of" in out and "re-planned every 5" in out
    assert "cpu clock" in out
    with pytest.raises(SystemExit, match="was trained on maze2d-umaze"):
        main(["--checkpoint", ckpt, "--task", "maze2d-medium"])
