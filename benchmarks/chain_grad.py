"""train.chain_grad: today's exact scheme against the shared pass, for speed, side by side.

    python benchmarks/chain_grad.py [--task pointmaze-umaze-goal] [--updates 60] [--rounds 4]
                                    [--threads 1] [--steps 30000] [--set SECTION.FIELD=VALUE]
                                    [--shared-set SECTION.FIELD=VALUE]
                                    [--exact-set SECTION.FIELD=VALUE]

Two trainers of the task's preset, identical but for ``train.chain_grad``, on one generated
dataset (``gac.data.generators``, seed 0; ``--set`` applies to both, ``--shared-set`` to the
shared one only, e.g. ``train.langevin_steps=1`` against two; ``--exact-set`` to the exact one
only: the maze2d presets train shared with one step, so their exact scheme of two steps of 0.3
is ``--exact-set train.langevin_steps=2 --exact-set train.langevin_step_size=0.3``), timed in alternating
rounds (a load changing during the run weighs on both alike); each update's wall time includes
its batch sampling. Also printed: each run's mean training loss over its last round, a sanity
check only. Whether the shared pass trains as well is a question of scores (3 seeds of `gac
train` + `gac eval` per scheme), which this script does not answer.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gac.config import apply_overrides, preset
from gac.data.generators import generate
from gac.data.segments import resegment
from gac.tasks import get_task
from gac.train.offline import Trainer

SCHEMES = ("exact", "shared")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="pointmaze-umaze-goal")
    parser.add_argument("--updates", type=int, default=60, help="timed updates per scheme")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30_000, help="dataset size (env steps)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override of both runs, e.g. --set train.batch_size=64")
    parser.add_argument("--shared-set", dest="shared_overrides", action="append", default=[],
                        help="config override of the shared run only, e.g. train.langevin_steps=1")
    parser.add_argument("--exact-set", dest="exact_overrides", action="append", default=[],
                        help="config override of the exact run only, e.g. train.langevin_steps=2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    store, _ = generate(task, args.steps, seed=0, progress=False, reference_episodes=0)
    trainers = {}
    for scheme in SCHEMES:
        own = args.shared_overrides if scheme == "shared" else args.exact_overrides
        cfg = apply_overrides(preset(args.task), [f"train.threads={args.threads}",
                                                  *args.overrides, *own,
                                                  f"train.chain_grad={scheme}"])
        data = resegment(store, cfg.data.segments, task.horizon)
        trainers[scheme] = Trainer(cfg, data, None,
                                   return_scale=cfg.train.return_scale or task.return_scale)
        for _ in range(3):  # warm-up
            trainers[scheme].update()
    spent = dict.fromkeys(SCHEMES, 0.0)
    last: dict[str, list[float]] = {}
    per_round = max(1, args.updates // args.rounds)
    for _ in range(args.rounds):
        for scheme, tr in trainers.items():
            t0 = time.perf_counter()
            last[scheme] = [tr.update()["loss"] for _ in range(per_round)]
            spent[scheme] += time.perf_counter() - t0
    n = per_round * args.rounds
    t = trainers["exact"].cfg.train
    print(f"task {args.task}: batch {t.batch_size} x window {t.window}, threads {args.threads}, "
          f"{n} timed updates per scheme in {args.rounds} alternating rounds")
    for scheme in SCHEMES:
        steps = trainers[scheme].cfg.train.langevin_steps
        print(f"{scheme:7s} ({steps} Langevin steps/update) {n / spent[scheme]:7.2f} updates/s   "
              f"loss over the last round {np.mean(last[scheme]):.4f}")
    print(f"shared / exact updates/s: {spent['exact'] / spent['shared']:.2f}")


if __name__ == "__main__":
    main()
