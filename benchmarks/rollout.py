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

The policy is the task preset's model with random weights (speed does not depend on them), or,
with ``--checkpoint``, a trained one with its training segments' plans: the bank modes of the
maze2d presets (``arrive``, ``stitch``, ``lookahead``) choose among those, so a maze2d task
needs a checkpoint (``gac train maze2d-umaze``). The policy re-plans as its preset does.

    python benchmarks/rollout.py [--task pointmaze-umaze-goal] [--horizon 300] [--threads 2]
                                 [--rounds 5] [--checkpoint runs/.../checkpoint.pt] [--clock cpu]

``--clock cpu`` times with this process's CPU time instead of the wall clock: on a machine
whose cores other jobs share, the wall clock also counts the time the process waited for a
core. Use it with ``--threads 1`` (with more threads it adds up their CPU times).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from gac.config import preset
from gac.model import GACModel
from gac.rollout import make_envs, rollout
from gac.runs import load_policy
from gac.tasks import get_task

Clock = Callable[[], float]  # time.perf_counter, or time.process_time for --clock cpu


def raw_env_rate(task, n_envs: int, horizon: int, seed: int = 0,
                 clock: Clock = time.perf_counter) -> float:
    envs = [task.make_env() for _ in range(n_envs)]
    rng = np.random.default_rng(seed)
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    t0 = clock()
    for _ in range(horizon):
        actions = rng.uniform(-1, 1, size=(n_envs, 2))
        for env, a in zip(envs, actions, strict=True):
            env.step(a)
    return n_envs * horizon / (clock() - t0)


def policy_rate(model, task, n_envs: int, horizon: int, cache: bool, icfg, bank=None,
                clock: Clock = time.perf_counter) -> float:
    envs = make_envs(task.make_env, n_envs)  # as for the raw rate, creation is not timed
    t0 = clock()
    rollout(model, envs, horizon, n_envs, seed=0, icfg=icfg, cache=cache, bank=bank)
    return n_envs * horizon / (clock() - t0)


def load(task_name: str | None, checkpoint: str | None):
    """(model, config, bank): the checkpoint's policy, or the preset's model, random weights."""
    if checkpoint:
        model, cfg, _, bank = load_policy(checkpoint)
        if task_name and task_name != cfg.task:
            raise SystemExit(f"--task {task_name}: {checkpoint} was trained on {cfg.task}")
        return model, cfg, bank
    name = task_name or "pointmaze-umaze-goal"
    cfg = preset(name)
    env = get_task(name).make_env()
    cfg.model.obs_dim, cfg.model.act_dim = env.obs_dim, env.act_dim
    env.close()
    return GACModel(cfg.model).eval(), cfg, None  # speed does not depend on the weights


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default=None,
                        help="default: the checkpoint's task, else pointmaze-umaze-goal")
    parser.add_argument("--checkpoint", default=None, help="a trained policy (gac train)")
    parser.add_argument("--horizon", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating raw/cached rounds")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall clock, or this process's CPU time (with --threads 1)")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, cfg, bank = load(args.task, args.checkpoint)
    task = get_task(cfg.task)
    icfg = cfg.inference
    weights = f"trained ({args.checkpoint})" if args.checkpoint else "random weights"
    plans = (f"{icfg.n_starts} starts x {icfg.ascent_steps} steps" if bank is None
             else f"a bank of {len(bank.returns):,} plans")
    print(f"task {cfg.task}, horizon {args.horizon}, model {model.n_params():,} params "
          f"(d={cfg.model.d_model}, L={cfg.model.n_layers}, K={cfg.model.context_steps}), "
          f"{weights}, plans: {icfg.mode} ({plans}), re-planned every "
          f"{icfg.replan_every or 'never'}, torch threads {args.threads}, {args.clock} clock")
    try:
        policy_rate(model, task, 2, 10, True, icfg, bank)  # warm-up
    except ValueError as exc:  # a bank mode without a checkpoint
        raise SystemExit(f"{cfg.task}'s preset plans with --mode {icfg.mode}: {exc}; here: "
                         f"pass --checkpoint of a model trained on it (gac train {cfg.task})"
                         ) from None
    rows = []
    for n in (1, 16):
        raws, cacheds = [], []
        for _ in range(max(1, args.rounds)):
            raws.append(raw_env_rate(task, n, args.horizon, clock=clock))
            cacheds.append(policy_rate(model, task, n, args.horizon, True, icfg, bank, clock))
        raw, cached = statistics.median(raws), statistics.median(cacheds)
        full = policy_rate(model, task, n, args.horizon, False, icfg, bank, clock)
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
