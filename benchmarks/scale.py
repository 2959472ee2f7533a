"""Training cost against dataset size: load time, memory and time per update on stores of 100k,
1M and 4M steps (4M: D4RL's maze2d-large size).

    python benchmarks/scale.py [--task maze2d-large] [--sizes 100000,1000000,4000000]
                               [--base 1000000] [--updates 40] [--rounds 4] [--threads 1]
                               [--set SECTION.FIELD=VALUE]

Data: one stream of ``--base`` steps from the task's generator (``gac.data.generators``, seed 0), made
once and cached under ``$GAC_CACHE/bench-scale/``. A smaller size is a prefix of its episodes; a
larger one repeats the base stream's episodes end to end (4M = the 1M stream four times, so its
episodes are copies: the cost of storing and sampling them is what is measured, not what they
teach). Each size is written as a gac HDF5 file, the way `gac train FILE` reads data.

Per size, in a fresh process (peak memory is a process's lifetime maximum): the file's load time
(``gac.data.datasets.load_file``), the resident memory it adds, and the peak over loading, building
the trainer and training, against the bytes of the raw per-step arrays. The process first warms up
on the smallest file (imports, the task's environment, torch's allocator: a few hundred MiB
whatever the data), then its peak restarts (Linux's VmHWM reset): the peak is given both as the
whole process's and as its growth over the warmed-up process. Time per update: all sizes' trainers
in one process, timed in alternating rounds (a load changing during the run weighs on every size
alike), each update wall time including its batch sampling.

Targets (issue 18): per-update time at 4M within 1.2x of 100k's; peak memory <= 3x the arrays.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gac.config import apply_overrides, preset
from gac.data.datasets import load_file
from gac.data.generators import generate
from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.segments import resegment
from gac.data.store import TrajectoryStore
from gac.paths import cache_dir
from gac.tasks import get_task
from gac.train.offline import Trainer


def status_mib(key: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux): VmRSS, VmHWM."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start the peak resident memory (VmHWM) afresh from the current one (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def array_mib(store: TrajectoryStore) -> float:
    """The raw per-step arrays (observations, actions, rewards, terminals, timeouts)."""
    fields = (store.observations, store.actions, store.rewards, store.terminals, store.timeouts)
    return sum(a.nbytes for a in fields if a is not None) / 2**20


def take(store: TrajectoryStore, n: int) -> TrajectoryStore:
    """The first ``n`` steps' worth of whole episodes; beyond the store's size, its episodes
    repeated end to end."""
    if n > store.num_steps:
        copies = -(-n // store.num_steps)
        offsets = np.arange(copies) * store.num_steps
        store = TrajectoryStore(
            observations=np.concatenate([store.observations] * copies),
            actions=np.concatenate([store.actions] * copies),
            rewards=None if store.rewards is None else np.concatenate([store.rewards] * copies),
            terminals=np.concatenate([store.terminals] * copies),
            timeouts=np.concatenate([store.timeouts] * copies),
            starts=(store.starts[None] + offsets[:, None]).ravel(),
            returns=np.tile(store.returns, copies), metadata=dict(store.metadata))
    e = int(np.searchsorted(store.starts, n, side="right"))  # episodes starting at or before n
    if e < store.num_episodes or store.num_steps > n:
        e = max(e - 1, 1)  # the episode running past n is left out
    cut = int(store.starts[e]) if e < store.num_episodes else store.num_steps
    rewards = None if store.rewards is None else store.rewards[:cut]
    return TrajectoryStore(store.observations[:cut], store.actions[:cut], rewards,
                           store.terminals[:cut], store.timeouts[:cut], store.starts[:e],
                           store.returns[:e], dict(store.metadata))


def dataset_files(task_name: str, sizes: list[int], base: int) -> dict[int, Path]:
    """The cached file of each size, made from the cached base stream where missing."""
    folder = cache_dir() / "bench-scale"
    folder.mkdir(parents=True, exist_ok=True)
    files = {n: folder / f"{task_name}-{n}-of-{base}-s0.hdf5" for n in sizes}
    if all(p.exists() for p in files.values()):
        return files
    base_path = folder / f"{task_name}-{base}-s0.hdf5"
    if base_path.exists():
        stream = load_hdf5(base_path)
    else:
        t0 = time.perf_counter()
        stream, _ = generate(get_task(task_name), base, seed=0, progress=True, reference_episodes=0)
        print(f"generated {base:,} steps of {task_name} in {time.perf_counter() - t0:.0f} s")
        save_hdf5(stream, base_path)
    for n, path in files.items():
        if not path.exists():
            save_hdf5(take(stream, n), path)
    return files


def make_trainer(path: Path, task_name: str, overrides: list[str], threads: int
                 ) -> tuple[Trainer, float, float]:
    """(trainer on the file's data, load seconds, MiB of raw arrays)."""
    task = get_task(task_name)
    t0 = time.perf_counter()
    store = load_file(path, task_name)
    load_s = time.perf_counter() - t0
    cfg = apply_overrides(preset(task_name), [f"train.threads={threads}", *overrides])
    store = resegment(store, cfg.data.segments, task.horizon)
    trainer = Trainer(cfg, store, None, return_scale=cfg.train.return_scale or task.return_scale)
    return trainer, load_s, array_mib(store)


def measure_one(path: Path, warm_up: Path, task_name: str, overrides: list[str], threads: int,
                updates: int) -> dict[str, Any]:
    """Load time and memory of one size, in a fresh process. A warm-up on ``warm_up`` (the
    smallest file) first pays the costs that do not depend on the data (imports, the task's
    environment, torch's allocator); then the peak restarts from the memory in use."""
    torch.set_num_threads(threads)
    trainer = make_trainer(warm_up, task_name, overrides, threads)[0]
    for _ in range(3):
        trainer.update()
    del trainer
    gc.collect()
    before = status_mib("VmRSS")
    reset_peak()
    trainer, load_s, arrays = make_trainer(path, task_name, overrides, threads)
    after_load = status_mib("VmRSS")
    for _ in range(updates):
        trainer.update()
    peak = status_mib("VmHWM")
    return {"steps": trainer.store.num_steps, "episodes": trainer.store.num_episodes,
            "load_s": load_s, "array_mib": arrays, "rss_before_mib": before,
            "load_added_mib": after_load - before, "peak_mib": peak, "peak_added_mib": peak - before}


def time_updates(files: dict[int, Path], task_name: str, overrides: list[str], threads: int,
                 updates: int, rounds: int) -> dict[int, float]:
    """Mean seconds per update of each size, the sizes timed in alternating rounds."""
    torch.set_num_threads(threads)
    trainers = {n: make_trainer(p, task_name, overrides, threads)[0] for n, p in files.items()}
    for tr in trainers.values():  # warm-up
        for _ in range(3):
            tr.update()
    spent = dict.fromkeys(trainers, 0.0)
    per_round = max(1, updates // rounds)
    for _ in range(rounds):
        for n, tr in trainers.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                tr.update()
            spent[n] += time.perf_counter() - t0
    return {n: s / (per_round * rounds) for n, s in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="maze2d-large")
    parser.add_argument("--sizes", default="100000,1000000,4000000")
    parser.add_argument("--base", type=int, default=1_000_000, help="generated steps")
    parser.add_argument("--updates", type=int, default=40, help="timed updates per size")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override, e.g. --set train.batch_size=64")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a child: one size, JSON out
    parser.add_argument("--warm-up", type=Path, help=argparse.SUPPRESS)  # the child's warm-up file
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.warm_up, args.task, args.overrides,
                                     args.threads, 5)))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    files = dataset_files(args.task, sizes, args.base)
    rows = {}
    for n, path in files.items():
        cmd = [sys.executable, __file__, "--one", str(path), "--warm-up", str(files[sizes[0]]),
               "--task", args.task,
               "--threads", str(args.threads), *(a for s in args.overrides for a in ("--set", s))]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[n] = json.loads(out.strip().splitlines()[-1])
    per_update = time_updates(files, args.task, args.overrides, args.threads, args.updates,
                              args.rounds)
    first = per_update[sizes[0]]
    print(f"task {args.task}, base stream {args.base:,} generated steps (larger sizes repeat it), "
          f"threads {args.threads}, {args.updates} timed updates per size in {args.rounds} "
          f"alternating rounds")
    print("| steps | episodes | load s | arrays MiB | load adds MiB | peak RSS MiB (growth) | "
          "growth / arrays | s/update | vs smallest |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        r = rows[n]
        print(f"| {r['steps']:,} | {r['episodes']:,} | {r['load_s']:.2f} | {r['array_mib']:.1f} | "
              f"{r['load_added_mib']:.0f} | {r['peak_mib']:.0f} ({r['peak_added_mib']:.0f}) | "
              f"{r['peak_added_mib'] / r['array_mib']:.2f} | {per_update[n]:.4f} | "
              f"{per_update[n] / first:.2f} |")
    last = per_update[sizes[-1]] / first
    growth = rows[sizes[-1]]["peak_added_mib"] / rows[sizes[-1]]["array_mib"]
    print(f"targets: per-update time at {sizes[-1]:,} steps {last:.2f}x of {sizes[0]:,}'s "
          f"(<= 1.2: {'met' if last <= 1.2 else 'NOT met'}); memory growth at {sizes[-1]:,} "
          f"{growth:.2f}x the arrays (<= 3: {'met' if growth <= 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
