"""Offline quality: GAC's normalised score on the PointMaze tasks over seeds, next to the
data-collecting policy and to plain prior sampling of plans.

    python benchmarks/quality.py [--tasks pointmaze-umaze-goal,pointmaze-medium-goal,pointmaze-large-goal]
                                 [--seeds 0,1,2] [--episodes 50] [--steps N]

For each task and seed S: the task's default dataset generated with seed S (cached), one
training run with the task preset (`gac train TASK --seed S`), so the spread over seeds includes
the data's, then `gac eval` with exploitation plans and with
prior plans (50 episodes per seed). "behaviour" is the noisy waypoint controller that collected
the data (sigma 0.5), scored on the same evaluation task. Runs live in runs/bench-quality/ and
are resumed, not redone, when the script is run again.
Targets: umaze >= 70, medium >= 30, large >= 45.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from gac.data.maze_generator import measure_behaviour
from gac.runs import evaluate_checkpoint, make_trainer, reference_returns
from gac.tasks import get_task, normalized_score

TARGETS = {"pointmaze-umaze-goal": 70, "pointmaze-medium-goal": 30, "pointmaze-large-goal": 45}


def behaviour_score(task_name: str, ref, episodes: int, noise: float = 0.5) -> float:
    """The data-collecting policy (noisy waypoint controller) on the evaluation task."""
    return float(normalized_score(measure_behaviour(get_task(task_name), episodes, noise, seed=123),
                                  *ref))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", default="pointmaze-umaze-goal,pointmaze-medium-goal,pointmaze-large-goal")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=None, help="override the preset's updates")
    parser.add_argument("--out", default="runs/bench-quality")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for task in args.tasks.split(","):
        exploit, prior, wall = [], [], []
        ref = None
        for seed in seeds:
            run_dir = Path(args.out) / f"{task}-s{seed}"
            t0 = time.time()
            sets = [f"train.steps={args.steps}"] if args.steps else []
            trainer = make_trainer(task, run_dir, seed=seed, overrides=sets, resume=True,
                                   progress=False)
            trainer.train(progress=True)
            ref = reference_returns(trainer.store.metadata)
            ckpt = run_dir / "checkpoint.pt"
            for mode, out in (("exploit", exploit), ("random", prior)):
                res = evaluate_checkpoint(ckpt, args.episodes, [seed], mode=mode, progress=False)
                out.append(res.summary()["score_mean"])
            wall.append(time.time() - t0)
            print(f"{task} seed {seed}: exploit {exploit[-1]:.1f}  prior {prior[-1]:.1f}  "
                  f"({wall[-1] / 60:.1f} min, {trainer.step} updates)", flush=True)
        behaviour = behaviour_score(task, ref, args.episodes)
        rows.append((task, np.mean(exploit), np.std(exploit), np.mean(prior), np.std(prior),
                     behaviour, trainer.step, np.mean(wall)))
    print("\n| task | GAC exploit | GAC prior plans | behaviour policy | target | updates | "
          "min/seed |\n|---|---|---|---|---|---|---|")
    for task, em, es, pm, ps, beh, steps, w in rows:
        print(f"| {task} | {em:.1f} ± {es:.1f} | {pm:.1f} ± {ps:.1f} | {beh:.1f} | "
              f"≥ {TARGETS.get(task, '-')} | {steps} | {w / 60:.1f} |")
    print(f"\nseeds {seeds}, {args.episodes} episodes per seed; ± is the std over seeds.")


if __name__ == "__main__":
    main()
