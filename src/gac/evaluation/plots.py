"""Plots people would rather look at than read: return histograms, learning curves and score
charts."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: gac runs on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, title: str) -> Path:
    """Title, lay out, write (creating the folder) and close a figure; returns its path."""
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def return_histogram(returns: np.ndarray, lengths: np.ndarray, path: str | Path, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(returns, bins=40, color="tab:blue")
    axes[0].set_xlabel("episode return")
    axes[0].set_ylabel("episodes")
    axes[1].hist(lengths, bins=40, color="tab:orange")
    axes[1].set_xlabel("episode length")
    return save_figure(fig, path, title)


def learning_curve(history: list[dict[str, float]], path: str | Path, title: str) -> Path:
    """Training losses and, where logged, the evaluation score against update steps."""
    steps = [h["step"] for h in history]
    has_eval = any("eval_score" in h for h in history)
    fig, axes = plt.subplots(1, 2 if has_eval else 1, figsize=(10 if has_eval else 5, 3.4),
                             squeeze=False)
    ax = axes[0][0]
    for key, colour in (("action_nll", "tab:blue"), ("return_nll", "tab:orange")):
        ax.plot(steps, [h.get(key, np.nan) for h in history], label=key, color=colour)
    ax.set_xlabel("update")
    ax.set_yscale("log")
    ax.set_title("training NLL (per step / per episode)")
    ax.legend()
    if has_eval:
        pts = [(h["step"], h["eval_score"]) for h in history if "eval_score" in h]
        ax = axes[0][1]
        ax.plot(*zip(*pts, strict=True), marker="o", color="tab:green")
        ax.set_xlabel("update")
        ax.set_ylabel("normalised score")
        ax.set_title("exploitation policy")
    return save_figure(fig, path, title)


def online_curves(records: list[dict[str, float]], returns_by_stage: list[np.ndarray],
                  path: str | Path, title: str) -> Path:
    """Score per stage, and how the returns of the collected data move from stage to stage."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    steps = [r["env_steps"] for r in records]
    axes[0].plot(steps, [r["score"] for r in records], marker="o", color="tab:green")
    axes[0].set_xlabel("online environment steps")
    axes[0].set_ylabel("normalised score (exploitation)")
    axes[0].axhline(records[0]["score"], color="grey", linestyle=":", label="offline")
    axes[0].legend()
    if returns_by_stage:
        axes[1].boxplot(returns_by_stage, tick_labels=[str(i + 1) for i in range(len(returns_by_stage))])
    axes[1].set_xlabel("stage")
    axes[1].set_ylabel("return of collected episodes")
    return save_figure(fig, path, title)


def mean_over_seeds(runs: list[list[tuple[float, float]]]) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Mean and std of (x, y) curves across seeds. Curves with as many points as each other are
    aligned point by point (the k-th evaluation of every seed; x is their mean, since episodes
    that end early make each seed's step counts differ a little); otherwise at every x any of
    them has, averaging the seeds that have it."""
    if len({len(run) for run in runs}) == 1:
        pts = np.array(runs, dtype=np.float64)  # (seeds, points, 2)
        return pts[:, :, 0].mean(0).tolist(), pts[:, :, 1].mean(0), pts[:, :, 1].std(0)
    xs = sorted({x for run in runs for x, _ in run})
    ys = [[y for run in runs for x2, y in run if x2 == x] for x in xs]
    return xs, np.array([np.mean(y) for y in ys]), np.array([np.std(y) for y in ys])


def method_curves(curves: dict[str, list[list[tuple[float, float]]]], path: str | Path,
                  title: str) -> Path:
    """Score against online environment steps, per method: one thin line per seed and a thick
    line through the means."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, (name, seeds) in enumerate(curves.items()):
        for pts in seeds:
            ax.plot(*zip(*pts, strict=True), color=f"C{k}", alpha=0.3, linewidth=0.8)
        xs, mean, _ = mean_over_seeds(seeds)
        ax.plot(xs, mean, color=f"C{k}", marker="o", linewidth=2,
                label=f"{name} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    ax.set_xlabel("online environment steps")
    ax.set_ylabel("normalised score")
    ax.legend(fontsize=8)
    return save_figure(fig, path, title)


def method_scores(panels: dict[str, dict[str, list[float]]], path: str | Path, title: str,
                  marks: dict[str, dict[str, float]] | None = None) -> Path:
    """One panel per score scale: a bar per method at the mean over seeds (± std as an error
    bar), each seed as a dot. ``marks[panel]`` draws published figures as labelled dashed
    lines on that panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (name, methods) in zip(axes[0], panels.items(), strict=True):
        xs = np.arange(len(methods))
        for x, seeds in zip(xs, methods.values(), strict=True):
            ax.bar(x, np.mean(seeds), yerr=np.std(seeds) if len(seeds) > 1 else None,
                   color=f"C{x % 10}", alpha=0.6, capsize=3)
            ax.scatter(np.full(len(seeds), x), seeds, color="black", s=10, zorder=3)
        for k, (label, value) in enumerate((marks or {}).get(name, {}).items()):
            ax.axhline(value, color=f"C{(k + 5) % 10}", linestyle="--", linewidth=0.9)
            ax.annotate(f"{label} (published)", (len(methods) - 0.5, value), fontsize=7,
                        ha="right", va="bottom")
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_xticks(xs, [m.upper() for m in methods], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("normalised score")
        ax.set_title(name, fontsize=9)
    return save_figure(fig, path, title)


def cell_shares(positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The share of positions (M, 2; maze2d's D4RL frame, x = row, y = column, unit cells) that
    falls in each cell of a (rows, columns) grid; positions outside it count in the nearest
    edge cell."""
    cells = np.rint(np.asarray(positions, dtype=np.float64)).astype(int)
    rows = np.clip(cells[:, 0], 0, shape[0] - 1)
    cols = np.clip(cells[:, 1], 0, shape[1] - 1)
    counts = np.zeros(shape)
    np.add.at(counts, (rows, cols), 1.0)
    return counts / max(1, len(cells))


def maze_occupancy(positions: np.ndarray, walls: np.ndarray, goal: np.ndarray,
                   path: str | Path, title: str) -> Path:
    """Where episodes spend their steps: each open cell coloured by its share of the steps,
    walls grey, the goal a red star. A policy that circles or stalls shows as bright cells
    away from the goal."""
    walls = np.asarray(walls, dtype=bool)
    share = np.ma.masked_where(walls, cell_shares(positions, walls.shape))
    fig, ax = plt.subplots(figsize=(0.55 * walls.shape[1] + 1.6, 0.55 * walls.shape[0] + 0.6))
    ax.imshow(walls, cmap="Greys", vmin=0.0, vmax=1.6)
    im = ax.imshow(share, cmap="viridis")
    ax.plot(goal[1], goal[0], marker="*", color="red", markersize=14, linestyle="none")
    ax.set_xlabel("y (column)")
    ax.set_ylabel("x (row)")
    fig.colorbar(im, ax=ax, label="share of steps")
    return save_figure(fig, path, title)
