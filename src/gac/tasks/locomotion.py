"""Gym-MuJoCo locomotion tasks (Hopper, HalfCheetah, Walker2d) with D4RL's dataset kinds.

Two families of names share the bodies:

- ``hopper-medium`` etc.: gac's own datasets, made here from committed behaviour policies
  (``gac.data.locomotion_generator``) on Gymnasium's **v5** environments, scored against the
  reference returns measured with those policies (stored in each dataset).
- ``hopper-medium-v2`` etc.: a user's own D4RL files, evaluated on Gymnasium's **v4**
  environments and scored with D4RL's published reference returns.

Why v4 for D4RL files: D4RL's ``-v2`` datasets were collected on gym's Hopper/HalfCheetah/
Walker2d-v3 (mujoco-py). Gymnasium's v4 is the same model and reward on the new MuJoCo bindings
(measured here: Hopper-v4 and HalfCheetah-v4 follow the same trajectories as D4RL's v2 data).
v5 differs:

- Hopper-v5, Walker2d-v5: the healthy reward (+1) is no longer paid on the step that ends an
  episode by falling; a v4 episode that terminates scores exactly 1 more than the same v5
  episode. Dynamics and every other step are identical.
- Walker2d-v5: both feet have friction 1.9 (v2-v4: left foot 1.9, right foot 0.9), so the
  right foot slides less: different dynamics, and D4RL's walker2d data do not fit v5.
- HalfCheetah-v5: same dynamics and reward as v4 (only ``info`` keys changed).

gac's own datasets use v5 (the maintained version, without the reward bug) and carry their own
reference returns, so their normalised scores are *not* comparable with D4RL's numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gac.tasks.references import d4rl_reference

HORIZON = 1000  # D4RL's and Gymnasium's max_episode_steps for all three bodies
KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert")
DEFAULT_STEPS = 100_000  # per gac dataset (D4RL: 1M; medium-expert 2M; medium-replay: its buffer)


@dataclass(frozen=True)
class Body:
    gym_name: str  # Gymnasium id without version
    obs_dim: int
    act_dim: int
    # Sizes of D4RL's -v2 files (informational: D4RL files are read, never made here).
    d4rl_replay_steps: int


BODIES: dict[str, Body] = {
    "hopper": Body("Hopper", 11, 3, 402_000),
    "halfcheetah": Body("HalfCheetah", 17, 6, 202_000),
    "walker2d": Body("Walker2d", 17, 6, 302_000),
}


def env_id(body: str, version: str) -> str:
    return f"{BODIES[body].gym_name}-{version}"


def make_mujoco_env(env_id_: str) -> Any:
    """The bare Gymnasium env (no TimeLimit or checker wrappers: gac counts steps itself)."""
    with warnings.catch_warnings():
        # v4 is deprecated upstream; gac uses it on purpose for D4RL files (see module doc).
        warnings.filterwarnings("ignore", message=".*out of date.*")
        env = gym.make(env_id_, disable_env_checker=True)
    return env.unwrapped


class LocomotionEnv:
    """gac's env interface over a Gymnasium MuJoCo body: float32 observations, clipped actions.

    Actions are clipped to the action box before stepping: MuJoCo would clamp the control anyway,
    but the env's control cost is computed on the unclipped action, so an out-of-range action
    would be charged for force it never applied.
    """

    def __init__(self, env_id_: str):
        self.env_id = env_id_
        self._env = make_mujoco_env(env_id_)
        space = self._env.action_space
        self.obs_dim = int(self._env.observation_space.shape[0])
        self.act_dim = int(space.shape[0])
        # All three bodies have a uniform [-1, 1] box; scalars keep metadata simple.
        if not (np.all(space.low == space.low[0]) and np.all(space.high == space.high[0])):
            raise ValueError(f"{env_id_}: non-uniform action bounds are not supported")
        self.action_low, self.action_high = float(space.low[0]), float(space.high[0])

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self._env.reset(seed=seed)
        return np.asarray(obs, dtype=np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_low, self.action_high)
        obs, reward, terminated, _, info = self._env.step(action)
        return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), False, info

    def close(self) -> None:
        self._env.close()


@dataclass(frozen=True)
class LocomotionTask:
    """``{body}-{kind}`` (gac's v5 datasets) or ``{body}-{kind}-v2`` (D4RL files, v4 env)."""

    name: str
    body: str
    kind: str
    source: str = "gac"  # "gac": made here; "d4rl": a user's D4RL file
    return_scale: float = 1000.0
    family: str = "locomotion"
    horizon: int = HORIZON
    split: str = "locomotion"

    @property
    def obs_dim(self) -> int:
        return BODIES[self.body].obs_dim

    @property
    def act_dim(self) -> int:
        return BODIES[self.body].act_dim

    @property
    def preset_key(self) -> str:
        return self.body

    @property
    def env_version(self) -> str:
        return "v4" if self.source == "d4rl" else "v5"

    @property
    def env_id(self) -> str:
        return env_id(self.body, self.env_version)

    @property
    def d4rl_dataset(self) -> str:
        return f"{self.body}-{self.kind}-v2"

    @property
    def default_steps(self) -> int:
        if self.source == "d4rl":
            return {"medium-replay": BODIES[self.body].d4rl_replay_steps,
                    "medium-expert": 2_000_000}.get(self.kind, 1_000_000)
        if self.kind == "medium-replay":  # the whole training buffer up to the medium policy
            from gac.data.behaviour import replay_size

            return replay_size(self.body) or DEFAULT_STEPS
        return DEFAULT_STEPS

    def d4rl_references(self) -> tuple[float, float] | None:
        """D4RL's (R_random, R_expert) for D4RL files; gac's datasets store measured ones."""
        return d4rl_reference(self.d4rl_dataset) if self.source == "d4rl" else None

    def make_env(self) -> LocomotionEnv:
        return LocomotionEnv(self.env_id)

    @property
    def d4rl_filename(self) -> str:
        """The name D4RL saved the dataset under (``hopper_medium_replay-v2.hdf5``)."""
        return f"{self.body}_{self.kind.replace('-', '_')}-v2.hdf5"

    def adapt_file(self, store: Any, path: Path) -> Any:
        """Name the task and D4RL's reference returns of a D4RL file (its attributes hold
        neither), so that it trains and scores against the v4 env like D4RL's own evaluation."""
        from gac.data.store import DataError

        if self.source != "d4rl" or "task" in store.metadata:
            return store
        meta = store.metadata
        meta.setdefault("task", self.name)
        meta.setdefault("env_id", self.env_id)
        meta.setdefault("horizon", self.horizon)
        meta.setdefault("d4rl_dataset", self.d4rl_dataset)
        refs = self.d4rl_references()
        if refs is not None and "ref_min_score" not in meta:
            meta["ref_min_score"], meta["ref_max_score"] = refs
            meta["ref_source"] = "D4RL (d4rl/infos.py)"
        if (store.obs_dim, store.act_dim) != (self.obs_dim, self.act_dim):
            raise DataError(f"{path}: observation/action dims {store.obs_dim}/{store.act_dim}, "
                            f"{self.env_id} has {self.obs_dim}/{self.act_dim}; is this really "
                            f"{self.d4rl_dataset}?")
        return store

    def cache_is_stale(self, path: Path) -> bool:
        """A cached dataset made from other behaviour policies than the committed ones."""
        import h5py

        from gac.data.behaviour import policies_fingerprint

        current = policies_fingerprint(self.body)
        if not current:  # no policies here (an installed package): keep what was made
            return False
        try:
            with h5py.File(path, "r") as f:
                return f.attrs.get("policies_sha") != current
        except OSError:
            return True


def locomotion_tasks() -> dict[str, LocomotionTask]:
    tasks = {f"{b}-{k}": LocomotionTask(f"{b}-{k}", b, k) for b in BODIES for k in KINDS}
    tasks.update({f"{b}-{k}-v2": LocomotionTask(f"{b}-{k}-v2", b, k, source="d4rl")
                  for b in BODIES for k in KINDS})
    return tasks
