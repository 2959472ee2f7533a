"""D4RL's maze2d offline: GAC next to BC, filtered BC, DT, IQL and CQL on the same files.

    python benchmarks/maze2d.py [--tasks maze2d-umaze,maze2d-medium,maze2d-large]
                                [--seeds 0,1,2] [--steps 2000] [--episodes 50]
                                [--data-steps N] [--algos gac,gac-local,gac-once,gac-select,
                                 gac-exploit,gac-prior,gac-elite,gac-stitch,gac-stitch15,gac-state,
                                 gac-state25,gac-lookahead,gac-lookahead-data,gac-arrive,
                                 gac-trained,bc,bc10,dt,iql,cql]
                                [--gac-set SECTION.FIELD=VALUE ...]

For every task and seed, the seed's dataset is made once by D4RL's recipe (`gac data make TASK
--seed S`; ``--data-steps`` for fewer steps than D4RL's 1M / 2M / 4M) and every method trains for
the same number of gradient steps on that file, then plays ``--episodes`` evaluation episodes
(D4RL's protocol: random open start cell, the fixed goal, horizon 300 / 600 / 800, sparse reward).

- GAC: the task's preset (`gac train FILE`, `gac eval`). On umaze, among the training segments
  that end where the best-return segments start, the one starting nearest the current position
  (`arrive`; before the twenty-first session the best-return plan among the nearest tenth,
  `local` = GAC-LOCAL), re-planned every 5 steps; on large the best stitched value among the
  nearest 4% (`stitch`), re-planned every 15 steps; on medium the nearest 2% on the whole
  state, each valued by its data return plus the stitched value where the end head says it
  ends from here, every 25 steps (= GAC-LOOKAHEAD-DATA; before the twentieth session `stitch`,
  = GAC-STATE25). The same trained model is also evaluated with umaze's earlier
  choice (GAC-LOCAL), planning once (GAC-ONCE), with the bank plan
  of highest predicted return r(U(z0), s0) re-planned every sixth of the horizon (GAC-SELECT,
  the previous preset), with exploitation by ascent (GAC-EXPLOIT), with prior samples
  (GAC-PRIOR, both re-planning as the preset) and with the plans of the 8 best training
  segments (GAC-ELITE), and with local plans ranked by stitched values (GAC-STITCH: segment
  returns propagated over the graph of segments joined end to start, ``--mode stitch``; and
  GAC-STITCH15, the same re-planned every 15 steps instead of 5; GAC-STATE, ``stitch`` every
  15 steps among the 2% of segments nearest on the whole state, velocity included; GAC-STATE25,
  the same re-planned every 25 steps; GAC-LOOKAHEAD, the preset's candidates each valued
  from the current state by the model, ``--mode lookahead``, for models with an end head;
  GAC-LOOKAHEAD-DATA, the same with the segments' data returns in place of the return head's;
  GAC-ARRIVE, ``--mode arrive``: among the segments that end where the best-return segments
  start, the one starting nearest the current position, every 5 steps; GAC-TRAINED, the
  preset's inference with the optimiser's last weights where training kept an average,
  ``--gac-set train.ema_decay=D``, which GAC plays by default).
  GAC sees only segment returns, never step rewards.
- BC: d3rlpy's behaviour cloning (256x256 MLP, batch 256). BC10: the same on the 10% of segments
  with the highest returns (CORL's 10% BC), the return-only filter any return-conditioned method
  must beat.
- DT: d3rlpy's Decision Transformer (locomotion benchmark's settings), conditioned on the task's
  R_expert, segments as episodes. Return-only in spirit (returns-to-go of the segments).
- IQL and CQL: d3rlpy, with the step rewards (which GAC does not get).

Scores are normalised with the references measured here (stored with each dataset: uniform
random actions; the waypoint controller driving to the goal), and also on D4RL's scale with
D4RL's published maze2d references, an approximation (PointMaze physics, gac's controller).
Rows go to ``OUT/results.jsonl`` and are reused when rerun with the same settings. The table
is printed, and ``OUT/TASK-STEPS-scores.png`` (``TASK-STEPS-VERSION-scores.png`` with
``--gac-set``, VERSION being GAC's run fingerprint) shows every method's per-seed scores on both
scales, with the published D4RL-scale figures (LPT-EI, IQL, DT, CQL) as dashed lines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from locomotion import fit_and_play, peer_config  # also quiets d3rlpy's import notice and logs
from peers_d3rlpy import d3rlpy

from gac.config import apply_overrides, fingerprint, preset
from gac.data.datasets import make_cached
from gac.data.hdf5 import load_hdf5
from gac.evaluation.plots import method_scores
from gac.paths import cache_dir
from gac.runs import evaluate_checkpoint, make_trainer, reference_returns
from gac.tasks import get_task, normalized_score
from gac.tasks.references import PUBLISHED_MAZE2D

TASKS = ("maze2d-umaze", "maze2d-medium", "maze2d-large")
# Evaluations of one trained GAC: the preset's inference (re-planning), and variants;
# "{h6}" is a sixth of the task's horizon.
GAC_MODES: dict[str, list[str]] = {
    "gac": [],
    # umaze's earlier preset on every maze: the best-return plan among the nearest tenth,
    # every 5 steps
    "gac-local": ["inference.mode=local", "inference.local_share=0.1", "inference.local_dims=2",
                  "inference.replan_every=5"],
    "gac-once": ["inference.replan_every=0"],  # the preset's choice, planned once per episode
    "gac-select": ["inference.mode=select", "inference.elite_episodes=1",
                   "inference.replan_every={h6}"],
    "gac-exploit": ["inference.mode=exploit"],  # ascent on r(U(z0), s0), with re-planning
    "gac-prior": ["inference.mode=random"],  # prior samples, with re-planning
    "gac-elite": ["inference.mode=elite", "inference.elite_episodes=8"],
    # local plans ranked by stitched values; 4% of the segments: on medium about those that
    # start at the nearest cell centre, where the data's segments begin and end
    "gac-stitch": ["inference.mode=stitch", "inference.local_share=0.04",
                   "inference.local_dims=2", "inference.replan_every=5"],
    # the same, re-planned every 15 steps instead of 5 (chosen on held-out evaluation seed 100,
    # medium: 41.7 against 28.5 mean return over the three models; docs/design-notes.md): large's
    # preset, and medium's before GAC-STATE25
    "gac-stitch15": ["inference.mode=stitch", "inference.local_share=0.04",
                     "inference.local_dims=2", "inference.replan_every=15"],
    # stitch with nearness on the whole state, velocity too (normalised), among the nearest 2%:
    # candidates that move as the agent does (chosen on held-out evaluation seed 100, medium)
    "gac-state": ["inference.mode=stitch", "inference.local_dims=0",
                  "inference.local_share=0.02", "inference.replan_every=15"],
    # the same, re-planned every 25 steps: the best of 18 settings (local_dims 2 / 0, share
    # 0.02 / 0.04 / 0.08, every 10 / 15 / 25) on held-out evaluation seed 100, mean return over
    # the three medium models of 16,000 updates: 79.8 against the previous preset's 63.2
    "gac-state25": ["inference.mode=stitch", "inference.local_dims=0",
                    "inference.local_share=0.02", "inference.replan_every=25"],
    # the preset's candidates and re-planning, each valued from the current state by the model:
    # predicted return plus the stitched value at the end head's predicted end (end head only)
    "gac-lookahead": ["inference.mode=lookahead", "inference.lookahead_return=model"],
    # the same with each candidate's own data return in place of the return head's r(z, s)
    "gac-lookahead-data": ["inference.mode=lookahead", "inference.lookahead_return=data"],
    # the segments that end where the best segments start, the nearest start among them, every
    # 5 steps: drive to where the returns are earned and hold there (``--mode arrive``)
    "gac-arrive": ["inference.mode=arrive", "inference.local_dims=2",
                   "inference.replan_every=5"],
    # the preset's inference with the trained weights, not their average (train.ema_decay)
    "gac-trained": ["inference.weights=trained"],
}
PEERS = ("bc", "bc10", "dt", "iql", "cql")
ALGOS = (*GAC_MODES, *PEERS)


def dataset_file(task: str, seed: int, steps: int | None) -> Path:
    """The seed's dataset, made once by the task's recipe (cached like `gac data make`)."""
    n = steps or get_task(task).default_steps
    path = cache_dir() / "datasets" / f"bench-{task}-{n}-s{seed}.hdf5"
    if not path.exists():  # kept if a benchmark running alongside made it meanwhile
        make_cached(task, seed, path, progress=True, steps=n)
    return path


def top_segments(store: Any, share: float) -> Any:
    """The ``share`` of segments with the highest returns (ties broken by order)."""
    k = max(1, int(round(share * store.num_episodes)))
    return store.subset(np.sort(np.argsort(-store.returns, kind="stable")[:k]))


def run_peer(algo: str, path: Path, seed: int, steps: int, episodes: int) -> dict[str, Any]:
    store = load_hdf5(path)
    task = store.metadata["task"]
    data = top_segments(store, 0.1) if algo == "bc10" else store
    if algo == "cql":  # d3rlpy's defaults with the batch and networks of the other peers
        cfg = d3rlpy.algos.CQLConfig(batch_size=256)
    else:
        cfg = peer_config("bc" if algo == "bc10" else algo, steps)
    target = float(store.metadata["ref_max_score"]) if algo == "dt" else None
    returns, train_s = fit_and_play(cfg, data, task, seed, steps, episodes, dt_target=target)
    return {"returns": [float(r) for r in returns], "train_s": train_s}


def run_gac(path: Path, task: str, seed: int, steps: int, episodes: int, root: Path,
            sets: list[str], modes: list[str]) -> dict[str, dict[str, Any]]:
    """Train GAC once on ``path``, a ``task`` file (resumed or reused if its run folder
    exists), evaluate every mode."""
    sets = gac_sets(steps, sets)
    version = gac_version(task, sets)
    run_dir = root / f"gac-{path.stem}-{steps}-{version}"
    trainer = make_trainer(str(path), run_dir, seed=seed, overrides=sets, resume=True,
                           progress=False)
    t0 = time.time()
    start = trainer.step
    trainer.train(progress=True)
    if start < steps:
        train_s = (time.time() - t0) * steps / (steps - start)
    else:
        train_s = float(np.mean([h["update_s"] for h in trainer.history])) * steps
        trainer.save(run_dir / "checkpoint.pt")  # the same state, in today's checkpoint layout
    out = {}
    for mode in modes:
        res = evaluate_checkpoint(run_dir / "checkpoint.pt", episodes, [seed],
                                  inference_overrides=mode_overrides(mode, task),
                                  progress=False)
        out[mode] = {"returns": res.returns[0].tolist(), "train_s": train_s,
                     "predicted": float(res.predicted.mean()),
                     "version": version, "inference": inference_version(task, sets, mode)}
    return out


def mode_overrides(mode: str, task: str) -> list[str]:
    h6 = str(get_task(task).horizon // 6)
    return [s.replace("{h6}", h6) for s in GAC_MODES[mode]]


def gac_sets(steps: int, gac_set: list[str]) -> list[str]:
    """The overrides a GAC run of ``steps`` updates trains with: the budget, then --gac-set."""
    return [f"train.steps={steps}", *gac_set]


def gac_version(task: str, sets: list[str]) -> str:
    """The fingerprint of GAC's training config (data, model, train) with ``sets``: it names the
    run folder, and a logged GAC row counts only while it matches the current preset's."""
    return fingerprint(apply_overrides(preset(task), list(sets)))


def inference_version(task: str, sets: list[str], mode: str) -> str:
    """The fingerprint of the inference config that evaluated a GAC column."""
    cfg = apply_overrides(preset(task), [*sets, *mode_overrides(mode, task)])
    return fingerprint(cfg, ("inference",))


def scores(row: dict[str, Any]) -> tuple[float, float]:
    """(score on gac's measured references, approximate score on D4RL's references)."""
    ret = float(np.mean(row["returns"]))
    ours = normalized_score(ret, *row["ref"])
    d4rl = normalized_score(ret, *get_task(row["task"]).d4rl_references())
    return float(ours), float(d4rl)


def table(rows: list[dict[str, Any]], tasks: list[str], algos: list[str]) -> str:
    head = "| task | " + " | ".join(a.upper() for a in algos) + " | seeds |"
    lines = [head, "|" + "---|" * (len(algos) + 2)]
    per_seed = []
    for task in tasks:
        for scale, k in (("", 0), (" (D4RL scale)", 1)):
            cells, n = [], 0
            for a in algos:
                s = [scores(r)[k] for r in rows if r["algo"] == a and r["task"] == task]
                n = max(n, len(s))
                cells.append(f"{np.mean(s):.1f} ± {np.std(s):.1f}" if s else "-")
                if k == 0 and s:
                    seeds = sorted((r["seed"], scores(r)[0]) for r in rows
                                   if r["algo"] == a and r["task"] == task)
                    per_seed.append(f"{task} {a}: " + ", ".join(f"s{x} {v:.1f}" for x, v in seeds))
            lines.append(f"| {task}{scale} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines) + "\n\nper seed:\n" + "\n".join(per_seed)


def plot(rows: list[dict[str, Any]], task: str, algos: list[str], path: Path,
         budget: str) -> Path | None:
    """Per-seed scores of every method on ``task``, on both scales, with the published
    D4RL-scale figures as dashed lines; None when no method has a row."""
    ours, d4rl = "gac's references", "D4RL scale (approx.)"
    panels: dict[str, dict[str, list[float]]] = {ours: {}, d4rl: {}}
    for a in algos:
        s = [scores(r) for r in sorted(rows, key=lambda r: r["seed"])
             if r["algo"] == a and r["task"] == task]
        if s:
            panels[ours][a] = [x[0] for x in s]
            panels[d4rl][a] = [x[1] for x in s]
    if not panels[ours]:
        return None
    marks = {d4rl: PUBLISHED_MAZE2D.get(task, {})}
    return method_scores(panels, path, f"{task}: {budget}", marks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps for every method")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--data-steps", type=int, default=None,
                        help="dataset size (default: D4RL's, 1M / 2M / 4M)")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--gac-set", action="append", default=[],
                        help="an override of GAC's preset, e.g. train.posterior_temperature=10")
    parser.add_argument("--out", default="runs/bench-maze2d")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only print the logged runs' table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "results.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        raise SystemExit("--seeds: give at least one seed, e.g. 0,1,2")
    algos = args.algos.split(",")
    for bad in set(algos) - set(ALGOS):
        raise SystemExit(f"unknown algorithm {bad!r}; known: {', '.join(ALGOS)}")
    tasks = args.tasks.split(",")
    for t in tasks:
        get_task(t)
    setting = {"steps": args.steps, "episodes": args.episodes, "data_steps": args.data_steps}

    def key(r: dict[str, Any]) -> tuple:
        # GAC rows by what they trained (the fingerprint), however the overrides were spelt:
        # a --gac-set that a later preset adopts names the same runs as the plain command.
        return r["algo"], r["task"], r["seed"], r.get("version") if r["algo"] in GAC_MODES else ()

    def version(task: str) -> str:
        return gac_version(task, gac_sets(args.steps, args.gac_set))

    def reproducible(r: dict[str, Any]) -> bool:
        """Peers: the same budget. GAC: also today's training and inference configs."""
        if not all(r.get(k) == v for k, v in setting.items()):
            return False
        if r["algo"] not in GAC_MODES:
            return True
        sets = gac_sets(r["steps"], r.get("gac_set", []))
        return (r.get("version"), r.get("inference")) == (
            gac_version(r["task"], sets), inference_version(r["task"], sets, r["algo"]))

    current = {key(r): r for r in rows if reproducible(r)}
    for seed in [] if args.report else seeds:
        for task in tasks:
            path = dataset_file(task, seed, args.data_steps)
            ref = list(reference_returns(load_hdf5(path).metadata, task))
            base = {"task": task, "seed": seed, **setting, "ref": ref}
            gac_todo = [a for a in algos if a in GAC_MODES
                        and (a, task, seed, version(task)) not in current]

            def record(algo: str, out: dict[str, Any], base: dict[str, Any] = base) -> None:
                row = {"algo": algo, **base, **out}  # logged as soon as it exists
                current[key(row)] = row
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
                ours, d4rl = scores(row)
                print(f"{row['task']} seed {row['seed']} {algo}: {ours:.1f} (D4RL scale "
                      f"{d4rl:.1f})", flush=True)

            if gac_todo:
                t0 = time.time()
                outs = run_gac(path, task, seed, args.steps, args.episodes, root, args.gac_set,
                               gac_todo)
                for a in gac_todo:
                    record(a, {**outs[a], "gac_set": args.gac_set, "wall_s": time.time() - t0})
            for algo in algos:
                if algo in GAC_MODES or (algo, task, seed, ()) in current:
                    continue
                t0 = time.time()
                record(algo, {**run_peer(algo, path, seed, args.steps, args.episodes),
                              "wall_s": time.time() - t0})
    shown = [r for r in current.values()
             if r["algo"] not in GAC_MODES or r["version"] == version(r["task"])]
    print(f"{args.steps} gradient steps per method, {args.episodes} episodes per seed; "
          f"± is the std over seeds; GAC overrides: {args.gac_set or 'none (preset)'}")
    print(table(shown, tasks, algos))
    for task in tasks:
        budget = (f"{args.steps} updates, {args.data_steps or 'D4RL-size'} data steps, "
                  f"{args.episodes} episodes per seed")
        tag = f"-{gac_version(task, gac_sets(args.steps, args.gac_set))}" if args.gac_set else ""
        png = plot(shown, task, algos, root / f"{task}-{args.steps}{tag}-scores.png", budget)
        if png:
            print(f"plot: {png}")


if __name__ == "__main__":
    main()
