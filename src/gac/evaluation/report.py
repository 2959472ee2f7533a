"""Markdown result tables, regenerated from a run's checkpoint and evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gac.evaluation.evaluate import EvalResult


def results_table(results: dict[str, EvalResult], ref_note: str = "") -> str:
    # maze2d: D4RL's published references too (an approximation: PointMaze physics)
    d4rl = all(res.d4rl_ref is not None for res in results.values())
    lines = ["| plan inference | normalised score | std (seeds) | std (episodes) | mean return |"
             " episodes |" + (" D4RL scale (approx.) |" if d4rl else ""),
             "|---|---|---|---|---|---|" + ("---|" if d4rl else "")]
    for mode, res in results.items():
        s = res.summary()
        lines.append(f"| {mode} | {s['score_mean']:.1f} | {s['score_std_seeds']:.1f} | "
                     f"{s['score_std_episodes']:.1f} | {s['return_mean']:.2f} | "
                     f"{res.returns.shape[1]} x {len(res.seeds)} seeds |"
                     + (f" {s['d4rl_score_mean']:.1f} |" if d4rl else ""))
    if ref_note:
        lines.append("")
        lines.append(ref_note)
    return "\n".join(lines)


def write_results(path: str | Path, task: str, trainer: Any, results: dict[str, EvalResult],
                  wall_s: float) -> str:
    meta = trainer.store.metadata
    ref = next(iter(results.values())).ref
    note = (f"Normalised with R_random={ref[0]:.2f}, R_expert={ref[1]:.2f} measured on the "
            f"evaluation task ({meta.get('ref_episodes', '?')} episodes each)." if ref else
            "No reference returns in the dataset: raw returns shown.")
    t = trainer.cfg.train
    head = (f"## {task}: offline GAC\n\n"
            f"Training: {trainer.step} updates, batch {t.batch_size} x window {t.window}, "
            f"seed {t.seed}; data: {trainer.store.num_episodes} episodes / "
            f"{trainer.store.num_steps} steps; wall time {wall_s / 60:.1f} min.\n\n")
    table = head + results_table(results, note) + "\n"
    Path(path).write_text(table)
    return table


def online_table(records: list[dict[str, float]]) -> str:
    """Score after each stage, the gain over the offline model, and the collected returns."""
    base = records[0]["score"]
    lines = ["| stage | env steps | score | Δ vs offline | collected return (mean / max) | "
             "y_ref | y⁺ | return of exploring episodes | exploration success | κ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r["stage"] == 0:
            lines.append(f"| 0 (offline) | 0 | {r['score']:.1f} | – | – | – | – | – | – | – |")
            continue
        lines.append(
            f"| {r['stage']} | {r['env_steps']:.0f} | {r['score']:.1f} | {r['score'] - base:+.1f} | "
            f"{r['collected_return']:.2f} / {r['collected_return_max']:.2f} | {r['y_ref']:.2f} | "
            f"{r['y_plus']:.2f} | {r.get('explore_return', float('nan')):.2f} | "
            f"{r['explore_success']:.2f} | {r['kappa']:.2f} |")
    return "\n".join(lines)
