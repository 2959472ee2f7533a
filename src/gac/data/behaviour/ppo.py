"""Training the locomotion behaviour policies: online with Stable-Baselines3 PPO, snapshotted
along the way, and exported as plain numpy MLPs (``gac.data.behaviour.actor``) into the policy
store (``gac.data.behaviour.store``) so that making datasets needs neither SB3 nor a GPU.

Why PPO: on this project's 2-core machine SB3's SAC runs about 55 env steps/s (1M steps = 5 h
per body), PPO 650-2,000 depending on the machine's load (1M steps in 10-25 min), and PPO with
observation/reward normalisation reaches D4RL's medium level on Hopper in ~120k steps. D4RL
trained SAC; the data here come from different (Gaussian, state-independent std) policies, and
PPO's experts are weaker (policies/README.md has the returns reached).

Training folder (resumable: a killed run continues from its last snapshot)::

    state.json                      config, snapshots (step, eval return), wall time
    checkpoint/model.zip, .../vecnormalize.pkl   the latest SB3 state
    actors/s{step:09d}.npz          each snapshot's actor as a plain MLP
    rollouts/s{step:09d}.npz        transitions collected since the previous snapshot

``export_policies`` then picks the expert (the best of the last few snapshots) and the medium
policy (the first snapshot at a third of the expert's normalised score, as D4RL defined medium),
measures the reference returns, and writes ``policies/{body}/manifest.json`` + ``actors.npz``:
every snapshot up to the medium one (to regenerate medium-replay) and the expert.

Usage: ``gac behaviour train hopper --budget 1000000 --max-minutes 25`` then
``gac behaviour export hopper --train-dir DIR``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gac.atomic import atomic_write, write_text
from gac.data.behaviour.actor import PlainActor, Policy, export_actor, run_episode
from gac.data.behaviour.store import policies_dir
from gac.paths import cache_dir
from gac.tasks.locomotion import BODIES, LocomotionEnv, env_id

MEDIUM_FRACTION = 1 / 3  # D4RL: medium = a policy at about a third of the expert's return


def evaluate_policy(env_id_: str, policy: Policy | None, episodes: int, seed: int,
                    stochastic_rng: np.random.Generator | None = None) -> np.ndarray:
    """Returns of ``episodes`` episodes (reset seeds seed, seed+1, ...); ``policy=None``:
    uniform random actions drawn from ``stochastic_rng``."""
    env = LocomotionEnv(env_id_)
    rng = stochastic_rng or np.random.default_rng(seed)

    def uniform(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(env.action_low, env.action_high, env.act_dim)

    act = uniform if policy is None else policy
    out = np.array([run_episode(env, act, seed + k)["ret"] for k in range(episodes)])
    env.close()
    return out


def evaluate_actor(actor: PlainActor, env_id_: str, episodes: int, seed: int,
                   stochastic: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return evaluate_policy(env_id_, (lambda o: actor(o, rng)) if stochastic else actor,
                           episodes, seed)


# ----------------------------------------------------------------------------- training
@dataclass
class BehaviourConfig:
    """PPO on one body. Hyperparameters: SB3's PPO defaults (those of the PPO paper's MuJoCo
    runs) with VecNormalize, which PPO needs on these bodies."""

    body: str
    algo: str = "ppo"
    budget: int = 1_000_000  # env steps
    seed: int = 0
    env_version: str = "v5"
    snapshot_every: int = 20_480  # env steps; a multiple of n_steps * n_envs
    eval_episodes: int = 5  # stochastic-policy episodes per snapshot
    n_envs: int = 1
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net: tuple[int, ...] = (64, 64)
    threads: int = 1

    def check(self) -> None:
        if self.body not in BODIES:
            raise ValueError(f"unknown body {self.body!r}; known: {', '.join(BODIES)}")
        if self.algo != "ppo":
            raise ValueError(f"algo {self.algo!r}: only 'ppo' is implemented (SAC runs ~55 "
                             f"steps/s on 2 cores: 5 h per million steps)")
        if self.snapshot_every % (self.n_steps * self.n_envs):
            raise ValueError(f"snapshot_every ({self.snapshot_every}) must be a multiple of "
                             f"n_steps * n_envs ({self.n_steps * self.n_envs})")
        if self.budget < 1:
            raise ValueError(f"budget must be >= 1, got {self.budget}")


# Per-body budgets used for the committed policies (see policies/README.md).
# Hopper reaches D4RL's expert level in 1M steps; the two others keep improving past it.
BODY_BUDGETS: dict[str, int] = {"hopper": 1_000_000, "walker2d": 2_000_000,
                                "halfcheetah": 2_000_000}


def default_train_dir(body: str, algo: str = "ppo", seed: int = 0) -> Path:
    return cache_dir() / "behaviour" / f"{body}-{algo}-s{seed}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=1, default=_jsonable))


def _jsonable(v: Any) -> Any:
    return v.tolist() if isinstance(v, np.ndarray | np.generic) else str(v)


def _savez(path: Path, **arrays: Any) -> None:
    with atomic_write(path) as tmp:  # the temporary name ends in .npz: savez adds nothing
        np.savez_compressed(tmp, **arrays)


def _recorder_class() -> type:
    import gymnasium as gym

    class Recorder(gym.Wrapper):
        """Logs every transition the learner collects (outside TimeLimit, so truncations show);
        the actions are the clipped ones SB3 sent to the env."""

        def __init__(self, env: Any):
            super().__init__(env)
            self.rows: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc")}
            self.fresh = True  # no transition since the (re)start: the next chunk starts an episode
            self._obs: Any = None

        def reset(self, **kwargs: Any) -> Any:
            obs, info = self.env.reset(**kwargs)
            self._obs = obs
            return obs, info

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = self.env.step(action)
            for key, value in zip(self.rows, (self._obs, action, reward, terminated,
                                              truncated and not terminated), strict=True):
                self.rows[key].append(value)
            self._obs = obs
            return obs, reward, terminated, truncated, info

        def flush(self) -> dict[str, np.ndarray]:
            out = {"obs": np.array(self.rows["obs"], np.float32).reshape(-1, self.observation_space.shape[0]),
                   "act": np.array(self.rows["act"], np.float32).reshape(-1, self.action_space.shape[0]),
                   "rew": np.array(self.rows["rew"], np.float32),
                   "term": np.array(self.rows["term"], bool),
                   "trunc": np.array(self.rows["trunc"], bool),
                   "continues": np.array(not self.fresh)}
            for v in self.rows.values():
                v.clear()
            self.fresh = False
            return out

    return Recorder


def train_behaviour(body: str, algo: str = "ppo", budget: int | None = None, seed: int = 0,
                    out_dir: str | Path | None = None, resume: bool = True,
                    max_minutes: float | None = None, log: Callable[[str], None] = print,
                    **overrides: Any) -> dict[str, Any]:
    """Train (or continue training) a behaviour policy; returns the training state.

    Stops at ``budget`` env steps, or at the first snapshot after ``max_minutes`` of this
    session (run again with ``resume`` to continue). ``overrides`` set BehaviourConfig fields.
    """
    import torch

    out = Path(out_dir) if out_dir else default_train_dir(body, algo, seed)
    state_path = out / "state.json"
    if state_path.exists() and not resume:
        raise FileExistsError(f"{out} holds a training run; resume it or choose another out_dir")
    if state_path.exists():
        state = json.loads(state_path.read_text())
        cfg = BehaviourConfig(**{**state["config"], "net": tuple(state["config"]["net"])})
        if budget is not None:
            cfg.budget = budget  # extending (or shortening) a run is allowed
    else:
        cfg = BehaviourConfig(body=body, algo=algo, budget=budget or BODY_BUDGETS[body], seed=seed,
                              **overrides)
        state = {"config": asdict(cfg), "snapshots": [], "timesteps": 0, "wall_s": 0.0,
                 "sessions": []}
    cfg.check()
    torch.set_num_threads(cfg.threads)
    for sub in ("checkpoint", "actors", "rollouts"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    state["config"] = asdict(cfg)
    # What made the run, when it was `gac behaviour train ...` (not a call from Python).
    command = " ".join(["gac", *sys.argv[1:]]) \
        if sys.argv and Path(sys.argv[0]).name == "gac" else None
    state.setdefault("command", command)  # the first session's: what made the run

    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    eid = env_id(cfg.body, cfg.env_version)
    recorders: list[Any] = []
    recorder = _recorder_class()

    def factory() -> Any:
        rec = recorder(gym.make(eid))  # gym.make's TimeLimit(1000) sits inside the recorder
        recorders.append(rec)
        return Monitor(rec)

    vec = DummyVecEnv([factory] * cfg.n_envs)
    ckpt = out / "checkpoint"
    if state["snapshots"]:
        venv = VecNormalize.load(str(ckpt / "vecnormalize.pkl"), vec)
        venv.training = True
        model = PPO.load(ckpt / "model.zip", env=venv, device="cpu")
        # A fresh random stream per session: repeating the first session's would correlate them.
        set_random_seed(cfg.seed + 1000 * len(state["sessions"]))
        log(f"resuming {cfg.body} at step {model.num_timesteps}")
    else:
        venv = VecNormalize(vec, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=cfg.gamma)
        model = PPO("MlpPolicy", venv, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                    n_epochs=cfg.n_epochs, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
                    gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
                    policy_kwargs={"net_arch": {"pi": list(cfg.net), "vf": list(cfg.net)}},
                    seed=cfg.seed, device="cpu", verbose=0)

    t_session = time.time()
    wall0 = float(state["wall_s"])
    state["sessions"].append({"start_step": int(model.num_timesteps), "command": command,
                              "host": platform.node(), "cpus": os.cpu_count()})

    def snapshot() -> None:
        step = int(model.num_timesteps)
        actor = export_actor(model, venv)
        _savez(out / "actors" / f"s{step:09d}.npz", **actor.to_arrays())
        if step > 0:
            chunks = [rec.flush() for rec in recorders]
            _savez(out / "rollouts" / f"s{step:09d}.npz",
                   **{f"e{i}_{k}": v for i, c in enumerate(chunks) for k, v in c.items()})
        returns = evaluate_actor(actor, eid, cfg.eval_episodes, seed=10_000 + step)
        model.save(ckpt / "model.zip")
        venv.save(str(ckpt / "vecnormalize.pkl"))
        wall = wall0 + time.time() - t_session
        state["snapshots"] = [s for s in state["snapshots"] if s["step"] < step]
        state["snapshots"].append({"step": step, "return_mean": float(returns.mean()),
                                   "return_std": float(returns.std()), "wall_s": round(wall, 1)})
        state["timesteps"], state["wall_s"] = step, round(wall, 1)
        state["sessions"][-1]["end_step"] = step
        _write_json(state_path, state)
        log(f"{cfg.body} step {step:>8}: return {returns.mean():8.1f} ± {returns.std():6.1f} "
            f"({cfg.eval_episodes} stochastic episodes), wall {wall / 60:.1f} min")

    if not state["snapshots"]:
        snapshot()  # the initial policy: it collected the first rollouts
    while model.num_timesteps < cfg.budget:
        if max_minutes is not None and time.time() - t_session > 60 * max_minutes:
            log(f"stopping after {max_minutes} min at step {model.num_timesteps}; resume to go on")
            break
        model.learn(min(cfg.snapshot_every, cfg.budget - model.num_timesteps),
                    reset_num_timesteps=False, progress_bar=False)
        snapshot()
    state["finished"] = model.num_timesteps >= cfg.budget
    _write_json(state_path, state)
    venv.close()
    return state



def export_policies(body: str, train_dir: str | Path | None = None,
                    root: str | Path | None = None, medium_fraction: float = MEDIUM_FRACTION,
                    reference_episodes: int = 100, expert_candidates: int = 5,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pick the medium and expert policies of a training run, measure reference returns on the
    evaluation env, and write ``{root}/{body}/manifest.json`` + ``actors.npz``.

    Expert: the best of the last ``expert_candidates`` snapshots (20 episodes each; one
    5-episode training evaluation is too noisy to trust a single final snapshot, and PPO's
    return dips now and then). Medium: the first snapshot whose training evaluation reaches
    ``medium_fraction`` of the way from R_random to R_expert, i.e. that normalised score.
    All returns are of the stochastic policies, as they act in the data.
    """
    train = Path(train_dir or default_train_dir(body))
    state = json.loads((train / "state.json").read_text())
    cfg = state["config"]
    eid = env_id(body, cfg["env_version"])
    snaps = state["snapshots"]
    if len(snaps) < 3:
        raise ValueError(f"{train}: {len(snaps)} snapshots; export needs the initial one and at "
                         f"least two trained ones (medium and expert)")

    def load(step: int) -> PlainActor:
        with np.load(train / "actors" / f"s{step:09d}.npz") as z:
            return PlainActor.from_arrays(z)

    def measure(actor: PlainActor | None, seed: int, stochastic: bool = True,
                episodes: int = reference_episodes) -> dict[str, float]:
        if actor is None:
            r = evaluate_policy(eid, None, episodes, seed)
        else:
            r = evaluate_actor(actor, eid, episodes, seed, stochastic)
        return {"mean": round(float(r.mean()), 2), "std": round(float(r.std()), 2),
                "episodes": episodes}

    t0 = time.time()
    # Seeds far from the datasets' (small seeds) and from training's (10_000 + step).
    candidates = snaps[max(2, len(snaps) - expert_candidates):]
    scores = {s["step"]: measure(load(s["step"]), 7_500_000, episodes=20)["mean"]
              for s in candidates}
    expert = max(candidates, key=lambda s: scores[s["step"]])
    exp_actor = load(expert["step"])
    refs = {"random": measure(None, 7_000_000), "expert": measure(exp_actor, 7_100_000)}
    lo, hi = refs["random"]["mean"], refs["expert"]["mean"]
    # Not the untrained initial policy, nor the expert: medium-replay needs training data before
    # medium, and medium-expert two different policies.
    before = [s for s in snaps[1:] if s["step"] < expert["step"]]
    medium = next((s for s in before if s["return_mean"] >= lo + medium_fraction * (hi - lo)),
                  before[-1])
    med_actor = load(medium["step"])
    med = measure(med_actor, 7_200_000)
    det = {"medium": measure(med_actor, 7_300_000, False, 10),
           "expert": measure(exp_actor, 7_400_000, False, 10)}
    log(f"{body}: random {lo:.1f}, medium (step {medium['step']}) {med['mean']:.1f}, expert "
        f"(step {expert['step']}; candidates {scores}) {hi:.1f} [{time.time() - t0:.0f}s]")

    # medium-replay: the chunk flushed at snapshot k was collected by the policies between
    # snapshots k-1 and k; regenerating it replays each of the two for half its steps.
    chunks = []
    prev = 0
    for s in snaps[1:]:
        if s["step"] > medium["step"]:
            break
        with np.load(train / "rollouts" / f"s{s['step']:09d}.npz") as z:
            n = sum(len(z[k]) for k in z.files if k.endswith("_rew"))
        chunks.append({"from": prev, "to": s["step"], "steps": n})
        prev = s["step"]
    keep = sorted({c[e] for c in chunks for e in ("from", "to")} | {medium["step"], expert["step"]})
    folder = Path(root or policies_dir()) / body
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for step in keep:
        arrays.update(load(step).to_arrays(f"s{step:09d}_"))
    _savez(folder / "actors.npz", **arrays)

    import gymnasium
    import mujoco

    try:
        import stable_baselines3

        sb3_version = stable_baselines3.__version__
    except ImportError:
        sb3_version = "unknown"
    manifest = {
        "body": body, "env_id": eid, "algo": cfg["algo"], "seed": cfg["seed"],
        "budget": cfg["budget"], "timesteps": state["timesteps"],
        "finished": bool(state.get("finished")), "train_wall_s": state["wall_s"],
        "command": state.get("command"), "config": cfg,
        "versions": {"stable_baselines3": sb3_version, "gymnasium": gymnasium.__version__,
                     "mujoco": mujoco.__version__},
        "medium_fraction": medium_fraction,
        "medium": {"step": medium["step"], "train_eval": medium["return_mean"],
                   "stochastic": med, "deterministic": det["medium"]},
        "expert": {"step": expert["step"], "train_eval": expert["return_mean"],
                   "candidates": {str(k): v for k, v in scores.items()},
                   "stochastic": refs["expert"], "deterministic": det["expert"]},
        # The normalised score's anchors: uniform random actions, and the expert acting as it
        # does in the expert data (with its own stochasticity), on the evaluation env.
        "references": {"random": refs["random"]["mean"], "expert": refs["expert"]["mean"],
                       "episodes": reference_episodes, "env_id": eid},
        "replay": {"steps": int(sum(c["steps"] for c in chunks)), "chunks": chunks},
        "snapshots": [{"step": s["step"], "return": round(s["return_mean"], 1)} for s in snaps],
    }
    _write_json(folder / "manifest.json", manifest)
    return manifest
