"""Offline-to-online: GAC's gain from return-only feedback, next to GAC without optimistic
exploration and (optionally) d3rlpy's Cal-QL and IQL, on the same task, data and budget.

    python benchmarks/offline_to_online.py [--task pointmaze-medium-goal] [--seeds 0,1,2]
        [--env-steps 28800] [--stages 3] [--sweep 20,100,300] [--peers calql,iql]

Offline GAC models come from the quality benchmark's runs (runs/bench-quality/TASK-sSEED,
trained with the task preset; trained here if missing). Each variant fine-tunes a copy with
`gac finetune`'s machinery under the same environment-step budget:
  auto     - exploration with the automatic delta-y rule (gac's default);
  no-expl  - exploitation plans only (LPT's online regime);
  dy=X     - exploration with a fixed delta-y of X reward units (ablation sweep, every seed).
Peers (needs `pip install -e ".[peers]"`): d3rlpy fit() then fit_online() on the same dataset,
sparse reward, same environment-step budget (benchmarks/peers_d3rlpy.py).
Prints the table and writes OUT/TASK-curves.png (score against online env steps, every seed).
Targets: GAC's gain >= +30 points and larger than the others'; auto within 10% of the best
fixed delta-y.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gac.evaluation.plots import method_curves
from gac.runs import make_online, make_trainer

TARGET_GAIN = 30.0


def offline_checkpoint(task: str, seed: int, root: Path) -> Path:
    run_dir = root / f"{task}-s{seed}"
    trainer = make_trainer(task, run_dir, seed=seed, resume=True, progress=False)
    trainer.train(progress=False)
    return run_dir / "checkpoint.pt"


def finetune(ckpt: Path, run_dir: Path, sets: list[str]) -> dict:
    online = make_online(ckpt, run_dir, sets, resume=True, progress=False)
    records = online.run(progress=False, log=lambda *_: None)
    online.close()
    # The stages' own logged times: right for a run resumed or already finished as well.
    return {"offline": records[0]["score"], "final": records[-1]["score"],
            "steps": records[-1]["env_steps"], "wall": sum(r["wall_s"] for r in records),
            "records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="pointmaze-medium-goal")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--env-steps", type=int, default=28_800)
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--updates-per-stage", type=int, default=1000)
    parser.add_argument("--sweep", default="", help="fixed delta-y values for the ablation")
    parser.add_argument("--peers", default="", help="comma list of calql,iql (d3rlpy)")
    parser.add_argument("--peer-offline-steps", type=int, default=20_000)
    parser.add_argument("--peer-hidden", default="128,128",
                        help="hidden layers of every peer network (d3rlpy's reproductions: 256-wide; "
                             "Cal-QL at those sizes runs ~4 updates/s here)")
    parser.add_argument("--offline-root", default="runs/bench-quality")
    parser.add_argument("--out", default="runs/bench-o2o")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = [f"online.env_steps={args.env_steps}", f"online.stages={args.stages}",
            f"online.updates_per_stage={args.updates_per_stage}"]
    variants = {"auto": [], "no-expl": ["online.exploration=false"]}
    sweep = {f"dy={v}": [f"online.delta_y={v}"] for v in args.sweep.split(",") if v}
    rows: dict[str, list[dict]] = {}
    for seed in seeds:
        ckpt = offline_checkpoint(args.task, seed, Path(args.offline_root))
        todo = {**variants, **sweep}
        for name, sets in todo.items():
            run_dir = Path(args.out) / f"{args.task}-{name}-s{seed}"
            res = finetune(ckpt, run_dir, base + sets)
            rows.setdefault(name, []).append(res)
            print(f"{name} seed {seed}: {res['offline']:.1f} -> {res['final']:.1f} "
                  f"({res['final'] - res['offline']:+.1f}) in {res['wall'] / 60:.1f} min", flush=True)
    for algo in [p for p in args.peers.split(",") if p]:
        sys.path.insert(0, str(Path(__file__).parent))
        from peers_d3rlpy import run_peer

        for seed in seeds:
            hidden = [int(h) for h in args.peer_hidden.split(",")] if args.peer_hidden else None
            r = run_peer(algo, args.task, seed, args.peer_offline_steps, args.env_steps,
                         hidden=hidden)
            rows.setdefault(f"d3rlpy {algo}", []).append(
                {"offline": r["offline_score"], "final": r["final_score"], "steps": r["env_steps"],
                 "wall": r["wall_s"], "records": [{"env_steps": 0, "score": r["offline_score"]},
                                                  {"env_steps": r["env_steps"],
                                                   "score": r["final_score"]}]})
            print(f"{algo} seed {seed}: {r['offline_score']:.1f} -> {r['final_score']:.1f}",
                  flush=True)

    print(f"\n## {args.task}: offline-to-online, budget {args.env_steps} env steps "
          f"({args.stages} stages), sparse reward, return-only labels for GAC\n")
    print("| method | offline score | final score | Δ | env steps | wall min/seed | seeds |")
    print("|---|---|---|---|---|---|---|")
    for name, res in rows.items():
        off = np.array([r["offline"] for r in res])
        fin = np.array([r["final"] for r in res])
        d = fin - off
        print(f"| {name} | {off.mean():.1f} ± {off.std():.1f} | {fin.mean():.1f} ± {fin.std():.1f} | "
              f"{d.mean():+.1f} ± {d.std():.1f} | {res[0]['steps']:.0f} | "
              f"{np.mean([r['wall'] for r in res]) / 60:.1f} | {len(res)} |")
    if sweep:
        best = max(np.mean([r["final"] for r in rows[k]]) for k in sweep)
        auto = np.mean([r["final"] for r in rows["auto"]])
        print(f"\nablation (mean final score over {len(seeds)} seed(s)): auto {auto:.1f} vs best fixed "
              f"delta-y {best:.1f} -> {100 * (auto - best) / max(abs(best), 1e-9):+.1f}% "
              "(target: within 10%)")
    curves = {name: [[(x["env_steps"], x["score"]) for x in r["records"]] for r in res]
              for name, res in rows.items()}
    png = method_curves(curves, Path(args.out) / f"{args.task}-curves.png",
                        f"{args.task}: offline-to-online, {args.env_steps} env steps")
    print(f"plot: {png}")
    gain = np.mean([r["final"] - r["offline"] for r in rows["auto"]])
    print(f"target: GAC gain >= +{TARGET_GAIN:.0f} -> {gain:+.1f} "
          f"({'met' if gain >= TARGET_GAIN else 'NOT met'})")


if __name__ == "__main__":
    main()
