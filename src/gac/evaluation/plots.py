"""Plots people would rather look at than read: return histograms and learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: gac runs on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def return_histogram(returns: np.ndarray, lengths: np.ndarray, path: str | Path, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(returns, bins=40, color="tab:blue")
    axes[0].set_xlabel("episode return")
    axes[0].set_ylabel("episodes")
    axes[1].hist(lengths, bins=40, color="tab:orange")
    axes[1].set_xlabel("episode length")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
