"""Rollout speed: the GAC policy with and without the KV cache, next to the raw environment.

All figures come from one run on this machine: environment steps per second of
  raw     - the environment alone, random actions, stepped in the same in-process loop;
  cached  - the GAC policy (exploitation plans + decoding with cached keys/values);
  full    - the same policy re-encoding the whole history at every step (no cache).
Targets (issue 18): cached / full >= 50 at horizon 300 (whole rollouts; "policy only" also
shows the ratio with the environment's time taken out); at 16 environments cached / raw >= 0.5
(the policy costs no more than the environment). Raw and cached are timed in ``--rounds`` alternating
rounds and their medians kept, so that a load changing during the run weighs on both alike;
full (slow) is timed once.

    python benchmarks/rollout.py [--task pointmaze-umaze-goal] [--horizon 300] [--threads 2]
                                 [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gac.config import preset
from gac.model import GACModel
from gac.rollout import make_envs, rollout
from gac.tasks import get_task


def raw_env_rate(task, n_envs: int, horizon: int, seed: int = 0) -> float:
    envs = [task.make_env() for _ in range(n_envs)]
    rng = np.random.default_rng(seed)
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    t0 = time.perf_counter()
    for _ in range(horizon):
        actions = rng.uniform(-1, 1, size=(n_envs, 2))
        for env, a in zip(envs, actions, strict=True):
            env.step(a)
    return n_envs * horizon / (time.perf_counter() - t0)


def policy_rate(model, task, n_envs: int, horizon: int, cache: bool, icfg) -> float:
    envs = make_envs(task.make_env, n_envs)  # as for the raw rate, creation is not timed
    t0 = time.perf_counter()
    rollout(model, envs, horizon, n_envs, seed=0, icfg=icfg, cache=cache)
    return n_envs * horizon / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="pointmaze-umaze-goal")
    parser.add_argument("--horizon", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating raw/cached rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task = get_task(args.task)
    cfg = preset(args.task)
    env = task.make_env()
    cfg.model.obs_dim, cfg.model.act_dim = env.obs_dim, env.act_dim
    model = GACModel(cfg.model).eval()  # speed does not depend on the weights
    print(f"task {args.task}, horizon {args.horizon}, model {model.n_params():,} params "
          f"(d={cfg.model.d_model}, L={cfg.model.n_layers}, K={cfg.model.context_steps}), "
          f"plans: {cfg.inference.mode} ({cfg.inference.n_starts} starts x "
          f"{cfg.inference.ascent_steps} steps), torch threads {args.threads}")
    policy_rate(model, task, 2, 10, True, cfg.inference)  # warm-up
    rows = []
    for n in (1, 16):
        raws, cacheds = [], []
        for _ in range(max(1, args.rounds)):
            raws.append(raw_env_rate(task, n, args.horizon))
            cacheds.append(policy_rate(model, task, n, args.horizon, True, cfg.inference))
        raw, cached = statistics.median(raws), statistics.median(cacheds)
        full = policy_rate(model, task, n, args.horizon, False, cfg.inference)
        rows.append((n, raw, cached, full))
    print(f"\n{'envs':>5} {'raw env/s':>11} {'cached/s':>10} {'no-cache/s':>11} "
          f"{'cached/no-cache':>16} {'policy only':>12} {'cached/raw':>11}")
    for n, raw, cached, full in rows:
        print(f"{n:>5} {raw:>11.0f} {cached:>10.0f} {full:>11.0f} {cached / full:>16.1f} "
              f"{policy_ratio(raw, cached, full):>12.1f} {cached / raw:>11.2f}")
    n, raw, cached, full = rows[-1]
    print(f"\ntargets: cached/no-cache >= 50 -> {cached / full:.1f} "
          f"({'met' if cached / full >= 50 else 'NOT met'}; the policy's own time only: "
          f"{policy_ratio(raw, cached, full):.1f}); at 16 envs cached/raw >= 0.5 -> "
          f"{cached / raw:.2f} ({'met' if cached / raw >= 0.5 else 'NOT met'})")


def policy_ratio(raw: float, cached: float, full: float) -> float:
    """Re-encoding's time per step over caching's, the environment's own time per step (the raw
    rate) taken out of both: what the cache saves in the policy itself."""
    env = 1 / raw
    return (1 / full - env) / max(1 / cached - env, 1e-12)


if __name__ == "__main__":
    main()
