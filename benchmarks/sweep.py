"""Scale-out on Ray: sweep wall time, and online collection throughput.

1. Sweep: the same 4 tiny `gac train` trials (different seeds, on a small U-maze dataset), run
   in-process one after another, and on a local Ray instance with one CPU per trial: wall time
   of each and the ratio. Ray is timed twice: cold (starting Ray and its workers is part of the
   bill) and warm (Ray already up, as in a long sweep or on a cluster).
2. Collection: one online group of ``--envs`` episodes in ``online.collect_shards=2`` shards,
   played locally (shards one after another) and on 2 Ray actors (in parallel; warmed up, so
   actor start-up is excluded); episodes are identical, only the time differs. The old
   single-batch scheme (``collect_shards=1``) is shown for reference.

    python benchmarks/sweep.py [--trials 4] [--trial-steps 200] [--envs 16] [--groups 3]

Needs Ray (pip install 'gac[ray]'). Uses one torch thread per trial / actor.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import ray  # noqa: E402
import torch  # noqa: E402

from gac.config import apply_overrides, preset  # noqa: E402
from gac.data.datasets import make_dataset  # noqa: E402
from gac.data.hdf5 import load_hdf5  # noqa: E402
from gac.sweep.runner import run_sweep  # noqa: E402
from gac.sweep.spec import parse_spec  # noqa: E402
from gac.tasks import get_task  # noqa: E402
from gac.train.offline import Trainer  # noqa: E402
from gac.train.online import OnlineRun  # noqa: E402

TINY = {"model.d_model": 32, "model.n_layers": 1, "model.context_steps": 4,
        "train.batch_size": 16, "train.window": 8, "train.warmup_steps": 1,
        "train.log_every": 50, "inference.n_starts": 4, "inference.ascent_steps": 5}


def sweep_times(data: Path, root: Path, trials: int, steps: int, cpus: int) -> dict[str, float]:
    def spec(name: str):
        return parse_spec({"name": name, "tasks": ["pointmaze-umaze-goal"], "seeds": list(range(trials)),
                           "dataset": str(data), "set": {**TINY, "train.steps": steps},
                           "eval": {"episodes": 4, "seeds": [0], "n_envs": 4}})

    quiet = lambda *_: None  # noqa: E731
    t0 = time.perf_counter()
    res = run_sweep(spec("local"), root=root, backend="local", log=quiet)
    local = time.perf_counter() - t0
    assert not res.failed, res.statuses
    t0 = time.perf_counter()  # cold: run_sweep starts a local Ray and shuts it down
    res = run_sweep(spec("ray-cold"), root=root, backend="ray", num_cpus=cpus, log=quiet)
    cold = time.perf_counter() - t0
    assert not res.failed, res.statuses
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    run_sweep(spec("ray-warmup"), root=root, backend="ray", log=quiet)  # workers started
    t0 = time.perf_counter()
    res = run_sweep(spec("ray-warm"), root=root, backend="ray", log=quiet)
    warm = time.perf_counter() - t0
    assert not res.failed, res.statuses
    trial_s = statistics.mean(s["wall_s"] for s in res.statuses.values())
    return {"local_s": local, "ray_cold_s": cold, "ray_warm_s": warm, "trial_s": trial_s}


def collection_rates(data: Path, work: Path, envs: int, groups: int) -> dict[str, float]:
    """Environment steps per second of one group of ``envs`` episodes (median of ``groups``)."""
    store = load_hdf5(data)
    task = get_task("pointmaze-umaze-goal")
    rates = {}
    for name, extra in (("local, 1 shard (old scheme)", ["online.collect_shards=1"]),
                        ("local, 2 shards", ["online.collect_shards=2"]),
                        ("ray, 2 actors, 2 shards", ["online.collect_shards=2",
                                                      "online.collector=ray",
                                                      "online.collector_actors=2"])):
        cfg = apply_overrides(preset("pointmaze-umaze-goal"),  # the preset's model and planning
                              ["train.steps=2", "train.warmup_steps=1", f"online.n_envs={envs}",
                               f"online.env_steps={envs * task.horizon * 100}",
                               # y+ from the data: no evaluation is played before timing
                               "online.ref_pool=data", *extra])
        trainer = Trainer(cfg, store, None, return_scale=100.0)
        trainer.train(progress=False)
        run = OnlineRun(trainer, task, work / "online", (0.0, 100.0))
        run.collect_group()  # warm-up: starts the actors, fills caches
        times = []
        for _ in range(groups):
            t0 = time.perf_counter()
            episodes = run.collect_group()
            times.append(time.perf_counter() - t0)
        run.close()  # the actors' CPUs are free for the next scheme
        rates[name] = sum(len(e) for e in episodes) / statistics.median(times)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--trial-steps", type=int, default=200, help="updates per tiny trial")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--envs", type=int, default=16, help="episodes per collected group")
    parser.add_argument("--groups", type=int, default=3, help="timed groups (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="gac-bench-sweep-"))
    try:
        data = make_dataset("pointmaze-umaze-goal", steps=4000, seed=0, out=work / "umaze.hdf5",
                            reference_episodes=4, progress=False)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        s = sweep_times(data, work / "runs", args.trials, args.trial_steps, args.cpus)
        print(f"\n{args.trials} trials of {args.trial_steps} updates (+ 4 evaluation episodes); "
              f"one trial alone takes ~{s['trial_s']:.1f} s in a Ray worker\n")
        print("| sweep | wall time | in-process / this |\n|---|---|---|")
        print(f"| in-process, sequential | {s['local_s']:.1f} s | 1.00 |")
        for key, label in (("ray_cold_s", "Ray, local, 2 CPUs (start-up included)"),
                           ("ray_warm_s", "Ray, local, 2 CPUs (already running)")):
            print(f"| {label} | {s[key]:.1f} s | {s['local_s'] / s[key]:.2f} |")
        r = collection_rates(data, work, args.envs, args.groups)
        base = r["local, 2 shards"]
        print(f"\none group of {args.envs} episodes x 300 steps, preset model and planning; "
              f"median of {args.groups} groups\n")
        print("| collection | env steps / s | vs local, 2 shards |\n|---|---|---|")
        for name, rate in r.items():
            print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
