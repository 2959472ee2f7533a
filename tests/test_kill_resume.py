"""A `gac train` and a `gac finetune` killed with SIGKILL, then resumed, end with the numbers of
an uninterrupted run, and the fine-tuning run loses no collected episode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from gac.cli import app
from gac.train.checkpoint import load_checkpoint

runner = CliRunner()
SETS = ["model.d_model=32", "model.n_layers=1", "model.context_steps=4", "train.batch_size=8",
        "train.window=8", "train.warmup_steps=2", "train.log_every=10",
        "train.checkpoint_every=10", "train.threads=1", "inference.n_starts=2",
        "inference.ascent_steps=2", "inference.langevin_steps=2"]
ONLINE = ["online.n_envs=1", "online.updates_per_stage=30", "online.eval_episodes=2",
          "online.explore_steps=2", "train.checkpoint_every=5"]


def flags(sets: list[str]) -> list[str]:
    return [x for s in sets for x in ("--set", s)]


def kill_after_writes(args: list[str], checkpoint: Path, writes: int) -> None:
    """Run the gac command ``args`` in a new process and SIGKILL it once ``checkpoint`` has
    been written ``writes`` times."""
    proc = subprocess.Popen([sys.executable, "-c", "from gac.cli import main; main()", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, last = 0, None
    try:
        while proc.poll() is None and seen < writes:
            try:
                stamp = os.stat(checkpoint).st_mtime_ns
            except FileNotFoundError:
                stamp = None
            if stamp is not None and stamp != last:
                seen, last = seen + 1, stamp
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        code = proc.wait()
    assert code == -signal.SIGKILL, "the run ended before it could be killed"


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_train_and_finetune_resume_to_the_uninterrupted_numbers(tiny_maze_path, tmp_path):
    train = ["train", str(tiny_maze_path), "--steps", "200", "--eval-episodes", "0", *flags(SETS)]
    ref = runner.invoke(app, [*train, "--run-dir", str(tmp_path / "ref")])
    assert ref.exit_code == 0, ref.output

    killed = tmp_path / "killed"
    kill_after_writes([*train, "--run-dir", str(killed)], killed / "checkpoint.pt", writes=2)
    interrupted_at = load_checkpoint(killed / "checkpoint.pt")["step"]
    assert 0 < interrupted_at < 200
    resumed = runner.invoke(app, [*train, "--run-dir", str(killed), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed at step {interrupted_at}" in resumed.output
    a, b = load_checkpoint(tmp_path / "ref" / "checkpoint.pt"), load_checkpoint(killed / "checkpoint.pt")
    assert a["step"] == b["step"] == 200
    assert same_weights(a["model"], b["model"]) and torch.equal(a["chains"]["z"], b["chains"]["z"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert not list(killed.glob(".*.tmp*"))  # no temporary file is left behind

    # Fine-tuning: 2 stages of 2 one-episode groups (300 steps each), a refit of 30 updates
    # per stage, checkpoints after every group and every 5 refit updates.
    ckpt = str(tmp_path / "ref" / "checkpoint.pt")
    finetune = ["finetune", ckpt, "--env-steps", "1200", "--stages", "2", *flags([*SETS, *ONLINE])]
    ref_on = runner.invoke(app, [*finetune, "--run-dir", str(tmp_path / "ref-online")])
    assert ref_on.exit_code == 0, ref_on.output

    online = tmp_path / "killed-online"
    kill_after_writes([*finetune, "--run-dir", str(online)], online / "checkpoint.pt", writes=3)
    cut = load_checkpoint(online / "checkpoint.pt")["online"]
    assert cut["records"] and cut["episodes"] is not None  # killed after a collected group
    kept = len(cut["episodes"]["returns"])
    resumed = runner.invoke(app, [*finetune, "--run-dir", str(online), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(tmp_path / "ref-online" / "checkpoint.pt")
    b = load_checkpoint(online / "checkpoint.pt")
    ea, eb = a["online"]["episodes"], b["online"]["episodes"]
    assert len(eb["returns"]) == 4 >= kept
    assert ea["returns"].tolist() == eb["returns"].tolist()  # no episode lost, none replayed
    assert (ea["observations"] == eb["observations"]).all()
    assert a["step"] == b["step"] and same_weights(a["model"], b["model"])
    drop = {"wall_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["online"]["records"]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b["online"]["records"]]
    assert (tmp_path / "ref-online" / "report.md").read_text() == (online / "report.md").read_text()
