"""Trajectory data: the store, HDF5 (D4RL layout) and Minari I/O, and dataset generators."""

from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.minari_io import load_minari
from gac.data.store import DataError, Episode, TrajectoryStore

__all__ = ["DataError", "Episode", "TrajectoryStore", "load_hdf5", "load_minari", "save_hdf5"]
