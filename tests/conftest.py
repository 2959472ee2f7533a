"""Shared fixtures: a private cache folder, and one tiny real U-maze dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models run fastest on one thread; on a shared 2-core machine, OpenMP threads that
    spin-wait against another busy process slow tests down a hundredfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GAC_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_maze_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 steps of real waypoint-controller data on pointmaze-umaze-goal."""
    from gac.data.datasets import make_dataset

    out = tmp_path_factory.mktemp("data") / "umaze-tiny.hdf5"
    return make_dataset("pointmaze-umaze-goal", steps=4000, seed=0, out=out, reference_episodes=4,
                        progress=False)
