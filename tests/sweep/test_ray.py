"""Sweeps and online collection on a local Ray instance (2 CPUs), with tiny trials."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sweep_helpers import EVAL, TINY_ONLINE, tiny_spec

from gac.collectors import init_ray
from gac.config import apply_overrides, preset
from gac.data.hdf5 import load_hdf5
from gac.runs import make_trainer
from gac.sweep.runner import prepare, run_sweep
from gac.sweep.spec import parse_spec
from gac.sweep.trial import STATUS, write_json
from gac.tasks import get_task
from gac.train.offline import Trainer
from gac.train.online import OnlineRun

if os.environ.get("CI") == "true":
    import ray  # CI installs the ray extra (.ci/run): there these tests run, never skip
else:
    ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    init_ray(num_cpus=2)  # a clear error, not a hang, if Ray does not start
    yield
    ray.shutdown()


def quiet(*_):
    pass


def test_ray_sweep_runs_in_parallel_skips_finished_and_reports_failures(tiny_maze_path, tmp_path):
    spec = tiny_spec(tiny_maze_path, grid={"model.max_timestep": [300, 10]})  # 10 fails
    res = run_sweep(spec, root=tmp_path, backend="ray", max_parallel=2, log=quiet)
    assert res.backend == "ray" and len(res.done) == 2 and len(res.failed) == 2
    for tid in res.done:
        assert res.statuses[tid]["pid"] != os.getpid()  # ran in Ray workers
    for tid in res.failed:
        assert "max_timestep=10" in res.statuses[tid]["error"]
        assert (tmp_path / "tiny" / tid / "error.txt").exists()

    again = run_sweep(spec, root=tmp_path, backend="ray", log=quiet)
    assert sorted(again.skipped) == sorted(res.done)  # finished: skipped
    assert sorted(again.failed) == sorted(res.failed)  # failed: tried again, by default
    assert all(again.statuses[t]["attempts"] == 2 for t in res.failed)


def test_ray_resumes_an_interrupted_trial_and_matches_in_process(tiny_maze_path, tmp_path):
    spec = tiny_spec(tiny_maze_path, seeds=[0])
    (trial, d), = prepare(spec, tmp_path)
    trainer = make_trainer(str(tiny_maze_path), d, task=trial.task, seed=0,
                           overrides=list(trial.overrides), progress=False)
    trainer.train(steps=2, progress=False)  # then "killed"
    write_json(d / STATUS, {"trial": trial.id, "status": "running", "attempts": 1})

    res = run_sweep(spec, root=tmp_path, backend="ray", log=quiet)
    status = res.statuses[trial.id]
    assert status["status"] == "done" and status["resumed"] and status["result"]["steps"] == 4
    ref = run_sweep(tiny_spec(tiny_maze_path, name="ref", seeds=[0]), root=tmp_path,
                    backend="local", log=quiet)
    assert ref.statuses[trial.id]["result"]["score"] == status["result"]["score"]
    a = torch.load(d / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "ref" / trial.id / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


TINY_RUN = ["model.d_model=32", "model.n_layers=1", "model.context_steps=4", "train.batch_size=8",
            "train.window=8", "train.warmup_steps=1", "train.steps=4", "train.log_every=2",
            "train.checkpoint_every=100", "online.env_steps=3000", "online.stages=2",
            "online.updates_per_stage=2", "online.eval_episodes=2", "online.n_envs=5",
            "online.explore_steps=2", "online.explore_share=0.8", "online.collect_shards=3",
            "inference.n_starts=2", "inference.ascent_steps=2"]


def make_run(path, run_dir, collector: str, mode: str = "exploit") -> OnlineRun:
    cfg = apply_overrides(preset("pointmaze-umaze-goal"), [*TINY_RUN, f"online.collector={collector}",
                                                      f"inference.mode={mode}"])
    trainer = Trainer(cfg, load_hdf5(path), run_dir, return_scale=100.0)
    trainer.train(progress=False)
    return OnlineRun(trainer, get_task("pointmaze-umaze-goal"), run_dir, (0.0, 100.0))


@pytest.mark.parametrize("mode", ["exploit", "refine"])  # refine: actors need the plan bank
def test_remote_collection_gives_the_episodes_of_local_collection(tiny_maze_path, tmp_path, mode):
    # One group of 5 episodes per stage, in 3 uneven shards (1, 2, 2) on 2 actors, 4 of them
    # exploring: the last shard mixes exploration and exploitation, one actor plays two shards.
    local = make_run(tiny_maze_path, tmp_path / "local", "local", mode)
    remote = make_run(tiny_maze_path, tmp_path / "remote", "ray", mode)
    for run in (local, remote):
        run.run(progress=False, log=quiet)
    remote.close()  # its actors' CPUs are free for the next test
    a, b = local.trainer.store, remote.trainer.store
    assert b.num_episodes == a.num_episodes == local.n_offline + 10
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert [r["score"] for r in local.records] == [r["score"] for r in remote.records]
    for p, q in zip(local.trainer.model.parameters(), remote.trainer.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_finetune_trials_collecting_on_ray_inside_ray_trials(tiny_maze_path, tmp_path):
    # Two trials hold both CPUs and each starts 2 collector actors: actors of a trial must not
    # wait for CPUs that the other trial holds (they use their trial's).
    off = run_sweep(tiny_spec(tiny_maze_path, name="off", seeds=[0]), root=tmp_path,
                    backend="local", log=quiet)
    assert not off.failed
    ckpt = tmp_path / "off" / "pointmaze-umaze-goal__s0" / "checkpoint.pt"
    spec = parse_spec({"name": "on", "command": "finetune", "tasks": ["pointmaze-umaze-goal"],
                       "seeds": [0, 1], "checkpoint_from": str(ckpt),
                       "set": {**TINY_ONLINE, "online.collector": "ray"}, "eval": EVAL})
    res = run_sweep(spec, root=tmp_path, backend="ray", max_parallel=2, log=quiet)
    assert len(res.done) == 2, res.statuses
