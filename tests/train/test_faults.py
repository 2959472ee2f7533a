"""Faults in training and checkpoints: divergence stops a run, the model is saved before it is
evaluated, checkpoints load safely, and a resume never silently ignores a changed setting."""

from __future__ import annotations

import json

import pytest
import torch

from gac.config import apply_overrides, preset
from gac.data.hdf5 import load_hdf5
from gac.runs import load_policy, make_online, make_trainer
from gac.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gac.train.offline import Trainer, TrainingDiverged

TINY = ["model.d_model=32", "model.n_layers=2", "model.context_steps=4", "train.batch_size=8",
        "train.window=8", "train.warmup_steps=2", "train.steps=6", "train.log_every=2",
        "train.checkpoint_every=3"]
ONLINE = ["online.env_steps=600", "online.stages=1", "online.updates_per_stage=2",
          "online.eval_episodes=2", "online.n_envs=2", "online.explore_steps=2",
          "inference.n_starts=2", "inference.ascent_steps=2", "inference.langevin_steps=2"]


def make(store, run_dir=None, extra=()):
    cfg = apply_overrides(preset("pointmaze-umaze-goal"), [*TINY, *extra])
    return Trainer(cfg, store, run_dir, return_scale=100.0)


@pytest.fixture(scope="module")
def store(tiny_maze_path):
    return load_hdf5(tiny_maze_path)


# ------------------------------------------------------------------------- divergence
def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(store, tmp_path):
    run = make(store, tmp_path / "run", ["train.lr=1e30", "train.checkpoint_every=1",
                                         "train.warmup_steps=0"])
    with pytest.raises(TrainingDiverged, match=r"at step \d+: the (action NLL|return NLL|chains"
                                               r" \(posterior plans z0\)|gradient norm) is not "
                                               r"finite; the last good checkpoint .* is kept"):
        run.train(progress=False)
    assert run.step < 6
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == run.step  # written before the update that diverged, never after
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_non_finite_weights_are_never_saved_nor_evaluated(store, tmp_path):
    run = make(store, tmp_path / "run")
    good = run.save(tmp_path / "run" / "checkpoint.pt")
    with torch.no_grad():
        next(run.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="not finite"):
        run.save(tmp_path / "run" / "checkpoint.pt")
    load_policy(good)  # the good checkpoint is untouched
    state = load_checkpoint(good)
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = torch.full_like(state["model"][key], float("inf"))
    bad = save_checkpoint(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=f"nan.pt: the model weights have NaN/inf values.*{key}"):
        load_policy(bad)


def test_the_final_checkpoint_is_written_before_the_final_evaluation(store, tmp_path):
    run = make(store, tmp_path / "run")

    def crash(_):
        raise RuntimeError("evaluation crashed")

    with pytest.raises(RuntimeError, match="evaluation crashed"):
        run.train(progress=False, on_eval=crash)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6


# ------------------------------------------------------------------------- safe loading
def test_checkpoints_load_without_running_code_from_them(store, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    state = make(store).state()
    evil = tmp_path / "evil.pt"
    torch.save({"format": "gac-checkpoint-v1", "gac_version": "0.1.0", **state,
                "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt: holds a Python object .*exec"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_every_load_failure_names_the_checkpoint(store, tmp_path):
    t = make(store, tmp_path / "run")
    path = t.save(tmp_path / "run" / "checkpoint.pt")
    state = load_checkpoint(path)
    key = next(iter(state["model"]))
    wrong = dict(state, model={**state["model"], key: torch.zeros(3, 3, 3)})
    for name, broken in (("shape.pt", wrong), ("nooptim.pt", {k: v for k, v in state.items()
                                                               if k != "optimizer"}),
                         ("nochains.pt", {k: v for k, v in state.items() if k != "chains"})):
        bad = save_checkpoint(broken, tmp_path / name)
        with pytest.raises(CheckpointError, match=name):
            make(store).load(bad)
        if name != "nooptim.pt":
            with pytest.raises(CheckpointError, match=name):
                load_policy(bad)


# ------------------------------------------------------------------------- honest resume
def test_resume_refuses_changed_settings_and_names_them(tiny_maze_path, tmp_path):
    run_dir = tmp_path / "run"
    first = make_trainer(str(tiny_maze_path), run_dir, overrides=TINY, progress=False)
    first.train(steps=3, progress=False)
    with pytest.raises(CheckpointError, match=r"train\.lr: 0\.001 in the checkpoint, 0\.5 now"):
        make_trainer(str(tiny_maze_path), run_dir, overrides=[*TINY, "train.lr=0.5"],
                     resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"train\.seed: 0 in the checkpoint, 7 now"):
        make_trainer(str(tiny_maze_path), run_dir, seed=7, overrides=TINY, resume=True,
                     progress=False)
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["train"]["lr"] == 1e-3 and recorded["train"]["seed"] == 0
    # Settings that do not change what was computed are applied and recorded.
    more = make_trainer(str(tiny_maze_path), run_dir, overrides=[*TINY, "train.steps=8",
                                                                 "train.log_every=4"],
                        resume=True, progress=False)
    assert more.step == 3 and more.cfg.train.steps == 8
    assert json.loads((run_dir / "config.json").read_text())["train"]["steps"] == 8


def test_online_resume_refuses_a_changed_plan(tiny_maze_path, tmp_path):
    offline = make_trainer(str(tiny_maze_path), tmp_path / "off", overrides=TINY, progress=False)
    offline.train(progress=False)
    ckpt = tmp_path / "off" / "checkpoint.pt"
    online = make_online(ckpt, tmp_path / "on", [*ONLINE, "online.n_envs=1"], progress=False)
    online.records.append({"stage": 0, "env_steps": 0, "score": 0.0})
    online.save()
    for changed in ("online.env_steps=1200", "online.stages=2", "online.delta_y=5",
                    "online.updates_per_stage=9", "train.lr=0.01"):
        with pytest.raises(CheckpointError, match=changed.split("=")[0].replace(".", r"\.")):
            make_online(ckpt, tmp_path / "on", [*ONLINE, "online.n_envs=1", changed],
                        resume=True, progress=False)
    same = make_online(ckpt, tmp_path / "on", [*ONLINE, "online.n_envs=1",
                                               "online.collector_actors=3"],
                       resume=True, progress=False)
    assert same.records and same.cfg.collector_actors == 3


def test_finetuning_applies_its_own_learning_rate(tiny_maze_path, tmp_path):
    offline = make_trainer(str(tiny_maze_path), tmp_path / "off", overrides=TINY, progress=False)
    offline.train(progress=False)
    online = make_online(tmp_path / "off" / "checkpoint.pt", tmp_path / "on",
                         [*ONLINE, "train.lr=0.02", "train.weight_decay=0.5"], progress=False)
    factor = online.trainer._lr_factor(online.trainer.step)
    for group in online.trainer.optimizer.param_groups:
        assert group["lr"] == pytest.approx(0.02 * factor) and group["weight_decay"] == 0.5
