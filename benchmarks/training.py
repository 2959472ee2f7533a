"""Training cost at a task preset: updates/s, peak memory, Langevin share, and model FLOP
utilisation (MFU) against the fp32 matmul peak measured in the same run.

    python benchmarks/training.py [--task pointmaze-umaze-goal] [--updates 60] [--threads 2]

MFU = model FLOPs per second (``gac.model.flops``: matmul FLOPs of forward, backward and the
Langevin posterior steps) / the FLOP rate of a large fp32 matmul on the same threads. Target >= 40%.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from gac.config import apply_overrides, preset
from gac.data.maze_generator import MazeDataConfig, generate_maze_dataset
from gac.model import flops_per_update
from gac.tasks import get_task
from gac.train.offline import Trainer


def matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="pointmaze-umaze-goal")
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override, e.g. --set train.batch_size=64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    store, _ = generate_maze_dataset(task, MazeDataConfig(steps=30_000, reference_episodes=0),
                                     progress=False)
    cfg = apply_overrides(preset(args.task), args.overrides)
    trainer = Trainer(cfg, store, None, return_scale=task.return_scale)
    t = cfg.train
    seq = trainer.burn_in + t.window
    for _ in range(5):  # warm-up
        trainer.update()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    langevin = total = 0.0
    t0 = time.perf_counter()
    for _ in range(args.updates):
        m = trainer.update()
        langevin += m["langevin_s"]
        total += m["update_s"]
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = matmul_peak()
    flops = flops_per_update(trainer.model, t.batch_size, seq, t.langevin_steps)
    mfu = flops * args.updates / wall / peak
    print(f"task {args.task}: d={cfg.model.d_model} L={cfg.model.n_layers} K={cfg.model.context_steps}, "
          f"batch {t.batch_size} x (burn-in {trainer.burn_in} + window {t.window}) steps, "
          f"{t.langevin_steps} Langevin steps/update, {trainer.model.n_params():,} params, "
          f"threads {args.threads}")
    print(f"updates/s             {args.updates / wall:8.2f}")
    print(f"Langevin share        {langevin / total:8.1%}")
    print(f"peak RSS              {rss / 1024:8.0f} MiB (before timed updates: {rss0 / 1024:.0f} MiB)")
    print(f"model GFLOP/update    {flops / 1e9:8.3f}")
    print(f"model GFLOP/s         {flops * args.updates / wall / 1e9:8.2f}")
    print(f"fp32 matmul GFLOP/s   {peak / 1e9:8.2f}   (1024^3 matmul, same threads, same run)")
    print(f"MFU                   {mfu:8.1%}   target >= 40%: {'met' if mfu >= 0.4 else 'NOT met'}")


if __name__ == "__main__":
    main()
