"""Training cost at a task preset, for every task family (pointmaze-*-goal, maze2d-*, locomotion):
updates/s, the Langevin share, model FLOP utilisation (MFU) against the fp32 matmul peak measured
in the same run, peak memory, and GAC's time per gradient step against d3rlpy's Decision
Transformer on the same data, in the same run.

    python benchmarks/training.py [--task pointmaze-umaze-goal] [--updates 60] [--threads 1]
                                  [--steps 30000] [--dt-steps 60] [--no-dt] [--set SECTION.FIELD=V]

The dataset is made by the task's own generator (``gac.data.generators``: a small maze stream, or
rollouts of the committed locomotion behaviour policies) and cut as training would cut it
(``data.segments``). MFU = model FLOPs per second (``gac.model.flops``: matmul FLOPs of forward,
backward and the Langevin posterior steps) / the FLOP rate of a large fp32 matmul on the same
threads. Target >= 40%.

GAC against DT: d3rlpy's DT with the locomotion benchmark's settings (``benchmarks/locomotion.py``)
trains on the same store; both sides are timed in alternating rounds, so that a load that changes
during the run weighs on both alike. A GAC gradient step includes its batch sampling and Langevin
steps, as DT's includes its batch sampling. Needs the `peers` extra (d3rlpy) for the DT side;
without it (or with --no-dt) that line is skipped.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import Any

import torch

from gac.config import apply_overrides, preset
from gac.data.generators import generate
from gac.data.segments import resegment
from gac.data.store import TrajectoryStore
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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_dt(store: TrajectoryStore, horizon: int, steps: int) -> Callable[[int], float] | None:
    """``fit(n) -> seconds`` for ``n`` gradient steps of d3rlpy's DT (the locomotion benchmark's
    settings) on ``store``; None without d3rlpy."""
    try:
        from locomotion import peer_config
        from peers_d3rlpy import d3rlpy, to_mdp_dataset
    except ImportError:
        return None
    cfg = peer_config("dt", steps)
    cfg.max_timestep = max(cfg.max_timestep, horizon + 1)
    dataset = to_mdp_dataset(store)
    dt = cfg.create(device="cpu:0")
    dt.build_with_dataset(dataset)

    def fit(n: int) -> float:
        t0 = time.perf_counter()
        dt.fit(dataset, n_steps=n, n_steps_per_epoch=n, show_progress=False, save_interval=10**9,
               logger_adapter=d3rlpy.logging.NoopAdapterFactory())
        return time.perf_counter() - t0

    return fit


def measure(task_name: str, updates: int = 60, threads: int = 1, steps: int = 30_000,
            dt_steps: int = 60, rounds: int = 2, dt: bool = True,
            overrides: list[str] | None = None) -> dict[str, Any]:
    """Train ``updates`` GAC updates (and ``dt_steps`` DT steps) on a fresh dataset of the task;
    the figures ``report`` prints."""
    torch.set_num_threads(threads)
    task = get_task(task_name)
    t0 = time.perf_counter()
    store, _ = generate(task, steps, seed=0, progress=False, reference_episodes=0)
    gen_s = time.perf_counter() - t0
    cfg = apply_overrides(preset(task_name), [f"train.threads={threads}", *(overrides or [])])
    store = resegment(store, cfg.data.segments, task.horizon)
    trainer = Trainer(cfg, store, None, return_scale=cfg.train.return_scale or task.return_scale)
    t = cfg.train
    for _ in range(5):  # warm-up
        trainer.update()
    rss0 = peak_rss_mib()
    fit = None
    rounds = max(1, rounds)
    langevin = total = gac_wall = dt_wall = 0.0
    gac_n = dt_n = 0
    for r in range(rounds):
        n = updates // rounds + (r < updates % rounds)
        start = time.perf_counter()
        for _ in range(n):
            m = trainer.update()
            langevin += m["langevin_s"]
            total += m["update_s"]
        gac_wall += time.perf_counter() - start
        gac_n += n
        if r == 0:
            rss = peak_rss_mib()  # GAC's peak, before DT's models share the process
            if dt:
                fit = make_dt(store, task.horizon, dt_steps)
                if fit is None:
                    print("d3rlpy is not installed (pip install -e '.[peers]'): no DT comparison")
                else:
                    fit(5)  # warm-up
        if fit is not None:
            k = dt_steps // rounds + (r < dt_steps % rounds)
            dt_wall += fit(k)
            dt_n += k
    peak = matmul_peak()
    flops = flops_per_update(trainer.model, t.batch_size, trainer.burn_in + t.window,
                             t.langevin_steps)
    arrays = sum(a.nbytes for a in (store.observations, store.actions, store.rewards,
                                    store.terminals, store.timeouts) if a is not None)
    return {"task": task_name, "family": task.family, "steps": store.num_steps,
            "episodes": store.num_episodes, "generate_s": gen_s, "array_mib": arrays / 2**20,
            "cfg": cfg, "burn_in": trainer.burn_in, "params": trainer.model.n_params(),
            "threads": threads, "updates_per_s": gac_n / gac_wall, "langevin_share": langevin / total,
            "rss_mib": rss, "rss_before_mib": rss0, "flops": flops,
            "flops_per_s": flops * gac_n / gac_wall, "peak": peak,
            "mfu": flops * gac_n / gac_wall / peak, "gac_s_per_step": gac_wall / gac_n,
            "dt_s_per_step": dt_wall / dt_n if dt_n else None}


def report(r: dict[str, Any]) -> None:
    cfg, t = r["cfg"], r["cfg"].train
    print(f"task {r['task']} ({r['family']}): {r['steps']:,} steps in {r['episodes']:,} episodes "
          f"(generated in {r['generate_s']:.0f} s, {r['array_mib']:.1f} MiB of arrays); "
          f"d={cfg.model.d_model} L={cfg.model.n_layers} K={cfg.model.context_steps}, "
          f"batch {t.batch_size} x (burn-in {r['burn_in']} + window {t.window}) steps, "
          f"{t.langevin_steps} Langevin steps/update, {r['params']:,} params, "
          f"threads {r['threads']}")
    print(f"updates/s             {r['updates_per_s']:8.2f}")
    print(f"Langevin share        {r['langevin_share']:8.1%}")
    print(f"peak RSS              {r['rss_mib']:8.0f} MiB (before timed updates: "
          f"{r['rss_before_mib']:.0f} MiB)")
    print(f"model GFLOP/update    {r['flops'] / 1e9:8.3f}")
    print(f"model GFLOP/s         {r['flops_per_s'] / 1e9:8.2f}")
    print(f"fp32 matmul GFLOP/s   {r['peak'] / 1e9:8.2f}   (1024^3 matmul, same threads, same run)")
    print(f"MFU                   {r['mfu']:8.1%}   target >= 40%: "
          f"{'met' if r['mfu'] >= 0.4 else 'NOT met'}")
    if r["dt_s_per_step"]:
        g, d = r["gac_s_per_step"], r["dt_s_per_step"]
        print(f"s/gradient step       GAC {g:.4f}, DT {d:.4f} (d3rlpy, batch 64 x context 20)")
        print(f"GAC / DT              {g / d:8.2f}   target <= 1.0: {'met' if g <= d else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="pointmaze-umaze-goal")
    parser.add_argument("--updates", type=int, default=60, help="timed GAC updates")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30_000, help="dataset size (env steps)")
    parser.add_argument("--dt-steps", type=int, default=60, help="timed DT gradient steps")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating GAC/DT timing rounds (each a share of the steps)")
    parser.add_argument("--no-dt", action="store_true", help="skip the DT comparison")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override, e.g. --set train.batch_size=64")
    args = parser.parse_args()
    report(measure(args.task, args.updates, args.threads, args.steps, args.dt_steps, args.rounds,
                   not args.no_dt, args.overrides))


if __name__ == "__main__":
    main()
