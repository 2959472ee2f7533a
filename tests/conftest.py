"""Shared fixtures: a private cache folder, and one tiny real U-maze dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GAC_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_maze_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 steps of real waypoint-controller data on pointmaze-umaze."""
    from gac.data.datasets import make_dataset

    out = tmp_path_factory.mktemp("data") / "umaze-tiny.hdf5"
    return make_dataset("pointmaze-umaze", steps=4000, seed=0, out=out, reference_episodes=4,
                        progress=False)
