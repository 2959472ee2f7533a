"""Offline locomotion: GAC next to d3rlpy's Decision Transformer, IQL and BC on gac's own datasets.

    python benchmarks/locomotion.py [--datasets hopper-medium,...] [--seeds 0,1,2,3,4,5,6,7]
                                    [--steps 1000] [--episodes 10]
                                    [--algos gac,gac-elite,gac-refine,dt,iql,bc]

For every dataset (made by `gac data make` from the committed behaviour policies, cached) and
seed, each method trains for the same number of gradient steps on the same file, then plays
``--episodes`` full episodes (1,000-step limit) on the dataset's evaluation env; the score is
normalised with the dataset's stored references (R_random, R_expert). Needs the `peers` extra
(d3rlpy 2.8.0) for DT, IQL and BC.

- GAC: the body's preset (`gac train DATASET`), exploitation plans.
- GAC-ELITE: the same trained GAC, with plans drawn from the posterior plans of the 8 best
  training episodes (`gac eval --mode elite`): no retraining, only another evaluation.
- GAC-REFINE: the same trained GAC, with the elite draw moved uphill on the predicted return
  inside a trust region around it (`gac eval --mode refine`).
- GAC-MLP and GAC-SHARED (not in the default run): GAC trained with the MLP prior instead of the
  UNet (`--set model.prior=mlp`), or with the chains' last move taken from the parameters' pass
  (`--set train.chain_grad=shared`): the speed options, scored on the same files.
- GAC-SHARED1 (not in the default run): the shared pass with a single chain step of 0.424 =
  0.3 * sqrt(2), the displacement of the preset's two steps: one transformer pass per update.
- GAC-FRESH (not in the default run): GAC whose parameters' pass scores a fresh window of each
  trajectory (`--set train.param_window=fresh`).
- DT: d3rlpy's reproduction settings (reproductions/offline/decision_transformer.py: width 128,
  3 layers, context 20, batch 64, lr 1e-4, AdamW wd 1e-4, grad clip 0.25, standardised
  observations, rewards x 0.001), except that the warm-up is a tenth of the budget (the
  reproduction's 10,000 warm-up steps would outlast short budgets). Target return: the body's
  R_expert, the analogue of the reproduction's per-body targets.
- BC: d3rlpy's behaviour cloning (a deterministic 256x256 MLP, lr 1e-3) with standardised
  observations and batch 256: the floor that every return-aware method should clear.
- IQL: d3rlpy's reproduction settings (reproductions/offline/iql.py: expectile 0.7, temperature
  3, batch 256, 256x256 networks, return-based reward scaling x 1000, cosine actor schedule
  over the budget).

"s/step" is training wall time over gradient steps (evaluation excluded), measured in this run
with the same thread count for every method. Results are appended to
runs/bench-locomotion/results.jsonl and reused when the script is rerun with the same budget.
Targets (issue 5): GAC >= DT on every dataset, GAC >= IQL on average.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peers_d3rlpy import d3rlpy, fit, play  # quiets d3rlpy's import notice and logs

from gac.config import apply_overrides, fingerprint, preset
from gac.data.datasets import resolve_dataset
from gac.data.store import TrajectoryStore
from gac.runs import evaluate_checkpoint, make_trainer, reference_returns
from gac.tasks import normalized_score
from gac.tasks.gym_adapter import make_gym_env

DATASETS = ("hopper-medium", "hopper-medium-replay", "walker2d-medium", "walker2d-medium-replay",
            "halfcheetah-medium", "halfcheetah-medium-replay")
ALGOS = ("gac", "gac-elite", "gac-refine", "gac-mlp", "gac-shared", "gac-shared1", "gac-fresh",
         "dt", "iql", "bc")
# GAC columns: one trained run per dataset and seed, evaluated with each plan mode (None: the
# preset's).
GAC_MODES: dict[str, str | None] = {"gac": None, "gac-elite": "elite", "gac-refine": "refine",
                                     "gac-mlp": None, "gac-shared": None, "gac-shared1": None,
                                     "gac-fresh": None}
# Columns that train their own GAC: issue 18's speed options, scored on quality (the MLP prior
# instead of the UNet; the chains' last move sharing the parameters' pass), and the parameters'
# pass on a fresh window of each trajectory (docs/design-notes.md, "the plan fitted to one window").
GAC_TRAIN_SETS: dict[str, list[str]] = {"gac-mlp": ["model.prior=mlp"],
                                        "gac-shared": ["train.chain_grad=shared"],
                                        # one pass per update: a single chain step of s*sqrt(2),
                                        # the drift (and noise) of the preset's two steps of s
                                        "gac-shared1": ["train.chain_grad=shared",
                                                        "train.langevin_steps=1",
                                                        "train.langevin_step_size=0.424"],
                                        "gac-fresh": ["train.param_window=fresh"]}


def peer_config(algo: str, steps: int) -> Any:
    if algo == "dt":
        return d3rlpy.algos.DecisionTransformerConfig(
            batch_size=64, learning_rate=1e-4, context_size=20, num_heads=1, num_layers=3,
            max_timestep=1000,
            encoder_factory=d3rlpy.models.VectorEncoderFactory([128], exclude_last_activation=True),
            optim_factory=d3rlpy.optimizers.AdamWFactory(
                weight_decay=1e-4, clip_grad_norm=0.25,
                lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(
                    warmup_steps=max(1, min(10_000, steps // 10)))),
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
            reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001))
    if algo == "iql":
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, weight_temp=3.0,
            max_weight=100.0, expectile=0.7,
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)))
    if algo == "bc":  # d3rlpy's defaults (deterministic MLP 256x256, lr 1e-3), batch 256
        return d3rlpy.algos.BCConfig(
            batch_size=256, learning_rate=1e-3,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler())
    raise ValueError(f"unknown peer {algo!r}")


def fit_and_play(cfg: Any, data: TrajectoryStore, task: str, seed: int, steps: int,
                 episodes: int, dt_target: float | None = None) -> tuple[list[float], float]:
    """Train the d3rlpy config ``cfg`` on ``data`` for ``steps`` gradient steps, then play
    ``episodes`` on the task's evaluation env (``dt_target``: a Decision Transformer's target
    return). Returns the episode returns and the training wall time."""
    d3rlpy.seed(seed)
    model = cfg.create(device="cpu:0")
    train_s = fit(model, data, steps)
    env = make_gym_env(task)
    if dt_target is not None:
        wrapper = model.as_stateful_wrapper(target_return=dt_target)
        returns = play(wrapper.predict, env, episodes, seed, reset=wrapper.reset)
    else:
        returns = play(lambda obs, _: model.predict(obs[None])[0], env, episodes, seed)
    env.close()
    return returns, train_s


def run_peer(algo: str, dataset: str, seed: int, steps: int, episodes: int) -> dict[str, Any]:
    """Train a d3rlpy peer on ``dataset`` (a name or an HDF5 path) and play its episodes."""
    store = resolve_dataset(dataset, seed=seed, progress=False)  # the seed's file, as GAC's
    task = store.metadata.get("task", dataset)
    target = float(store.metadata["ref_max_score"]) if algo == "dt" else None
    returns, train_s = fit_and_play(peer_config(algo, steps), store, task, seed, steps, episodes,
                                    dt_target=target)
    ref = reference_returns(store.metadata, task)
    return {"returns": returns, "train_s": train_s, "data_seed": seed,
            "score": float(normalized_score(float(np.mean(returns)), *ref))}


def gac_version(dataset: str, overrides: list[str] | None = None) -> str:
    """A fingerprint of the GAC training config (model and train sections) a run would use; it
    names the run's folder. Results of an older preset are kept in the log but neither reused
    nor tabulated. Inference settings do not retrain: see ``inference_version``."""
    return fingerprint(apply_overrides(preset(dataset), list(overrides or [])), ("model", "train"))


def inference_version(dataset: str, overrides: list[str] | None = None, mode: str | None = None
                      ) -> str:
    """A fingerprint of the inference config that evaluates a GAC run (``mode``: None keeps the
    preset's)."""
    sets = [*(overrides or []), *([f"inference.mode={mode}"] if mode else [])]
    return fingerprint(apply_overrides(preset(dataset), sets), ("inference",))


def run_gac(dataset: str, seed: int, steps: int, episodes: int, root: Path,
            overrides: list[str] | None = None, mode: str | None = None) -> dict[str, Any]:
    """Train GAC with the body's preset (resumed if its run folder exists, reused if trained)
    and evaluate it with the preset's plans or ``mode``'s."""
    sets = [f"train.steps={steps}", *(overrides or [])]
    task = resolve_dataset(dataset, progress=False).metadata.get("task", dataset)
    version = gac_version(task, sets)
    run_dir = root / f"gac-{Path(dataset).stem}-s{seed}-{steps}-{version}"
    trainer = make_trainer(dataset, run_dir, seed=seed, overrides=sets, resume=True, progress=False)
    t0 = time.time()
    start = trainer.step
    trainer.train(progress=True)
    if start < steps:  # a resumed run: extrapolated from the updates made now
        train_s = (time.time() - t0) * steps / (steps - start)
    else:  # already trained: the logged update times (batch sampling excluded)
        train_s = float(np.mean([h["update_s"] for h in trainer.history])) * steps
    res = evaluate_checkpoint(run_dir / "checkpoint.pt", episodes, [seed], mode=mode, progress=False)
    return {"returns": res.returns[0].tolist(), "train_s": train_s, "version": version,
            "inference": inference_version(task, sets, mode), "score": res.summary()["score_mean"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7")
    parser.add_argument("--steps", type=int, default=1000, help="gradient steps for every method")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--algos", default="gac,gac-elite,gac-refine,dt,iql,bc",
                        help=f"comma-separated, of: {', '.join(ALGOS)}")
    parser.add_argument("--out", default="runs/bench-locomotion")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true",
                        help="only print the table of the runs already in the log")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "results.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    seeds = [int(s) for s in args.seeds.split(",")]
    algos = args.algos.split(",")
    for bad in set(algos) - set(ALGOS):
        raise SystemExit(f"unknown algorithm {bad!r}; known: {', '.join(ALGOS)}")
    datasets = args.datasets.split(",")

    done = current_rows(done)

    for seed in [] if args.report else seeds:  # seed-major: a partial run covers every dataset
        for dataset in datasets:
            for algo in algos:
                if any(run_key(r) == (algo, dataset, seed, args.steps, args.episodes) for r in done):
                    continue
                t0 = time.time()
                if algo in GAC_MODES:  # gac-*: the same trained run, evaluated with other plans
                    out = run_gac(dataset, seed, args.steps, args.episodes, root,
                                  overrides=GAC_TRAIN_SETS.get(algo), mode=GAC_MODES[algo])
                else:
                    out = run_peer(algo, dataset, seed, args.steps, args.episodes)
                row = {"algo": algo, "dataset": dataset, "seed": seed, "steps": args.steps,
                       "episodes": args.episodes, "threads": args.threads, **out,
                       "wall_s": time.time() - t0}
                done.append(row)
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{dataset} seed {seed} {algo}: {row['score']:.1f} "
                      f"({row['train_s'] / args.steps:.3f} s/step)", flush=True)
    print(table(done, datasets, algos, args.steps, args.episodes))
    print(f"plot: {plot(done, datasets, algos, args.steps, args.episodes, root / 'scores.png')}")


def run_key(r: dict[str, Any]) -> tuple:
    """What one logged row stands for: a method on one dataset, seed, budget and episode count."""
    return r["algo"], r["dataset"], r["seed"], r["steps"], r.get("episodes")


def current_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The logged rows that the current code would reproduce, one per run: GAC rows of the
    preset's current training and inference fingerprints (per dataset, budget and plan mode),
    and peer rows trained on their own seed's file (rows logged before ``data_seed`` existed
    trained every seed on seed 0's file)."""
    versions: dict[tuple[str, str, int], tuple[str, str]] = {}

    def current(r: dict[str, Any]) -> bool:
        if r["algo"] not in GAC_MODES:
            return r.get("data_seed", 0) == r["seed"]
        key = (r["algo"], r["dataset"], r["steps"])
        if key not in versions:
            sets = [f"train.steps={r['steps']}", *GAC_TRAIN_SETS.get(r["algo"], [])]
            versions[key] = (gac_version(r["dataset"], sets),
                             inference_version(r["dataset"], sets, GAC_MODES[r["algo"]]))
        return (r.get("version"), r.get("inference")) == versions[key]

    # One row per method, dataset, seed and budget: a run logged twice (two jobs sharing the log)
    # counts once, the later row kept.
    return list({run_key(r): r for r in rows if current(r)}.values())


def data_score(dataset: str, seed: int) -> float:
    """The normalised mean episode return of one seed's dataset."""
    store = resolve_dataset(dataset, seed=seed, progress=False)
    ref = reference_returns(store.metadata, dataset)
    return float(normalized_score(float(store.returns.mean()), *ref))


def table(rows: list[dict[str, Any]], datasets: list[str], algos: list[str], steps: int,
          episodes: int) -> str:
    rows = [r for r in rows if r["steps"] == steps and r["episodes"] == episodes]
    paired = "gac" in algos and "dt" in algos
    head = ("| dataset | data avg | " + " | ".join(a.upper() for a in algos)
            + (" | GAC − DT (95% CI) |" if paired else " |") + " seeds |")
    lines = [head, "|" + "---|" * (len(algos) + 3 + paired)]
    means: dict[str, list[float]] = {a: [] for a in algos}
    behind = 0  # datasets where GAC trails DT beyond the seeds' noise
    for dataset in datasets:
        avg = float(np.mean([data_score(dataset, seed) for seed in
                             sorted({r["seed"] for r in rows if r["dataset"] == dataset}) or [0]]))
        cells, n = [], set()
        for a in algos:
            s = [r["score"] for r in rows if r["algo"] == a and r["dataset"] == dataset]
            n.add(len(s))
            cells.append(f"{np.mean(s):.1f} ± {np.std(s):.1f}" if s else "-")
            if s:
                means[a].append(float(np.mean(s)))
        if paired:
            diff = paired_difference(rows, dataset, "gac", "dt")
            cells.append(f"{diff[0]:+.1f} [{diff[1]:+.1f}, {diff[2]:+.1f}]" if diff else "-")
            behind += bool(diff and diff[2] < 0)
        lines.append(f"| {dataset} | {avg:.1f} | " + " | ".join(cells) + f" | {max(n)} |")
    lines.append("| **average** | | " + " | ".join(
        f"{np.mean(means[a]):.1f}" if len(means[a]) == len(datasets) else "-" for a in algos)
        + (" |" if paired else "") + " | |")
    per_step = {a: [r["train_s"] / r["steps"] for r in rows if r["algo"] == a] for a in algos}
    timing = ", ".join(f"{a.upper()} {np.mean(v):.3f} s" for a, v in per_step.items() if v)
    lines.append(f"\n{steps} gradient steps per run, {episodes} episodes per seed; ± is the std "
                 f"over seeds. Training time per gradient step: {timing}.")
    if per_step.get("gac") and per_step.get("dt"):
        ratio = np.mean(per_step["gac"]) / np.mean(per_step["dt"])
        lines.append(f"GAC / DT time per gradient step: {ratio:.2f}")
    if all(len(means.get(a, [])) == len(datasets) for a in ("gac", "dt", "iql")):
        wins = sum(g >= d for g, d in zip(means["gac"], means["dt"], strict=True))
        lines.append(f"targets: GAC >= DT on {wins} of {len(datasets)} datasets (all needed); "
                     f"GAC average {np.mean(means['gac']):.1f} vs IQL {np.mean(means['iql']):.1f}")
        lines.append(f"GAC behind DT beyond the 95% interval of the paired seed differences on "
                     f"{behind} of {len(datasets)} datasets")
    return "\n".join(lines)


def paired_difference(rows: list[dict[str, Any]], dataset: str, a: str, b: str
                      ) -> tuple[float, float, float] | None:
    """Mean of ``a`` − ``b`` over the seeds both ran (each seed is one dataset file, so the
    pairs share their data), with a 95% Student-t interval; None under two pairs."""
    score = {(r["algo"], r["seed"]): r["score"] for r in rows if r["dataset"] == dataset}
    d = np.array([score[a, s] - score[b, s] for (algo, s) in score if algo == a and (b, s) in score])
    if len(d) < 2:
        return None
    from scipy import stats  # with d3rlpy (via scikit-learn), which the peers need anyway

    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def plot(rows: list[dict[str, Any]], datasets: list[str], algos: list[str], steps: int,
         episodes: int, path: Path) -> Path:
    """Grouped bars (mean over seeds) with one dot per seed, per dataset and method."""
    from gac.evaluation.plots import plt, save_figure

    rows = [r for r in rows if r["steps"] == steps and r["episodes"] == episodes]
    fig, ax = plt.subplots(figsize=(1.6 * len(datasets) + 2, 3.8))
    width = 0.8 / len(algos)
    for k, algo in enumerate(algos):
        label: str | None = algo.upper()
        for i, dataset in enumerate(datasets):
            s = [r["score"] for r in rows if r["algo"] == algo and r["dataset"] == dataset]
            if not s:
                continue
            x = i + (k - (len(algos) - 1) / 2) * width
            ax.bar(x, np.mean(s), width, color=f"C{k}", alpha=0.6, label=label)
            label = None
            ax.scatter(np.full(len(s), x), s, color="black", s=10, zorder=3)
    ax.set_xticks(np.arange(len(datasets)), datasets, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("normalised score (bars: mean; dots: seeds)", fontsize=8)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8)
    return save_figure(fig, path, f"offline locomotion, {steps} gradient steps, {episodes} episodes per seed")


if __name__ == "__main__":
    main()
