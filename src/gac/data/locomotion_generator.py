"""Locomotion datasets of D4RL's kinds, made from the committed behaviour policies.

Kinds (D4RL's definitions, gac's policies -- see ``gac.data.behaviour``):

- ``random``: uniform random actions (D4RL used a randomly initialised SAC policy instead).
- ``medium``: the medium policy (first PPO snapshot at about a third of the expert's return).
- ``expert``: the final PPO policy.
- ``medium-expert``: medium then expert episodes, half the steps each (D4RL: 1M + 1M).
- ``medium-replay``: everything PPO collected before the medium snapshot. From the training
  folder's recorded rollouts when given (exact), otherwise regenerated from the committed
  snapshots: the steps collected between snapshots k-1 and k are replayed, half with each.

Policies act with their own Gaussian noise (D4RL sampled its stochastic SAC policies);
``deterministic=True`` uses the mean action. Episodes end on a true termination (``terminals``)
or at the 1000-step limit (``timeouts``); a dataset holds whole episodes only -- collection
finishes the episode in progress when ``steps`` is reached, so it holds up to 999 steps more
(D4RL cut its last episode) and every stored return is a complete episode's return.

Reference returns (R_random: uniform actions; R_expert: the expert acting as in the expert data)
are measured once per body when the policies are exported and stored in every dataset, so all
kinds of a body share one normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gac.data.behaviour import BehaviourPolicies, PlainActor, load_policies, run_episode
from gac.data.store import DataError, Episode, TrajectoryStore
from gac.tasks.locomotion import DEFAULT_STEPS, LocomotionEnv, LocomotionTask


@dataclass
class LocomotionDataConfig:
    steps: int = DEFAULT_STEPS
    seed: int = 0
    deterministic: bool = False  # True: mean actions; False: the policy's own noise (D4RL)

    def check(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def collect(env: LocomotionEnv, policy: Any, steps: int, seed: int,
            bar: tqdm | None = None) -> list[Episode]:
    """Whole episodes of ``policy(obs) -> action`` until at least ``steps`` steps; the first
    reset is seeded, later ones continue the env's random stream."""
    episodes: list[Episode] = []
    total = 0
    while total < steps:
        ep = run_episode(env, policy, seed if not episodes else None)
        r = ep["rewards"]
        episodes.append(Episode(ep["observations"], ep["actions"], r, ep["terminal"], ep["ret"]))
        total += len(r)
        if bar is not None:
            bar.update(len(r))
    return episodes


def _actor_policy(actor: PlainActor, rng: np.random.Generator, deterministic: bool) -> Any:
    return actor if deterministic else (lambda o: actor(o, rng))


def training_replay(train_dir: str | Path, medium_step: int) -> list[Episode]:
    """medium-replay from a training folder's recorded rollouts (chunks up to ``medium_step``).

    Each env's stream is concatenated across chunks; an episode still running where a stream
    breaks (a resumed session) or ends (the medium snapshot) is dropped: its return is unknown.
    """
    files = sorted(Path(train_dir, "rollouts").glob("s*.npz"))
    files = [f for f in files if int(f.stem[1:]) <= medium_step]
    if not files:
        raise DataError(f"{train_dir}: no recorded rollouts up to step {medium_step}")
    episodes: list[Episode] = []
    open_rows: dict[int, list[dict[str, np.ndarray]]] = {}  # env -> pieces of its running episode
    for f in files:
        with np.load(f) as z:
            n_envs = len({k.split("_")[0] for k in z.files})
            for e in range(n_envs):
                c = {k: z[f"e{e}_{k}"] for k in ("obs", "act", "rew", "term", "trunc", "continues")}
                if not bool(c["continues"]):
                    open_rows[e] = []  # the stream restarted: the running episode is lost
                ends = np.flatnonzero(c["term"] | c["trunc"])
                start = 0
                for end in ends:
                    pieces = [*open_rows.get(e, []), {k: c[k][start:end + 1] for k in
                                                     ("obs", "act", "rew", "term")}]
                    open_rows[e] = []
                    obs, act, rew = (np.concatenate([p[k] for p in pieces])
                                     for k in ("obs", "act", "rew"))
                    episodes.append(Episode(obs, act, rew, bool(c["term"][end]),
                                            float(rew.sum(dtype=np.float64))))
                    start = end + 1
                if start < len(c["rew"]):
                    open_rows.setdefault(e, []).append(
                        {k: c[k][start:] for k in ("obs", "act", "rew", "term")})
    if not episodes:
        raise DataError(f"{train_dir}: no complete episode up to step {medium_step}")
    return episodes


def generate_locomotion_dataset(task: LocomotionTask, cfg: LocomotionDataConfig,
                                policies: BehaviourPolicies | None = None,
                                replay_dir: str | Path | None = None,
                                policies_root: str | Path | None = None,
                                progress: bool = True) -> TrajectoryStore:
    """The dataset of ``task.kind`` on the task's (v5) env. Deterministic given the seed."""
    cfg.check()
    if task.source != "gac":
        raise ValueError(f"{task.name} names a D4RL file, which cannot be made here; make "
                         f"gac's own {task.body}-{task.kind}, or pass your D4RL file's path")
    pol = policies or load_policies(task.body, policies_root)
    if pol.manifest["env_id"] != task.env_id:
        raise DataError(f"{task.body} policies were trained on {pol.manifest['env_id']}, "
                        f"the task evaluates on {task.env_id}")
    env = task.make_env()
    # Independent streams per part, so that e.g. medium-expert's halves do not share noise.
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)]
    bar = tqdm(total=cfg.steps, desc=f"generating {task.name}", unit="step",
               disable=not progress, mininterval=0.5)
    meta: dict[str, Any] = {}

    def actor_episodes(step: int, steps: int, rng: np.random.Generator, seed: int) -> list[Episode]:
        return collect(env, _actor_policy(pol.actor(step), rng, cfg.deterministic), steps, seed,
                       bar)

    kind = task.kind
    if kind == "random":
        rng = rngs[0]
        episodes = collect(env, lambda o: rng.uniform(env.action_low, env.action_high, env.act_dim),
                           cfg.steps, cfg.seed, bar)
        meta["behavior_return"] = pol.references[0]
    elif kind in ("medium", "expert"):
        step = pol.medium_step if kind == "medium" else pol.expert_step
        episodes = actor_episodes(step, cfg.steps, rngs[0], cfg.seed)
        meta["policy_step"] = step
        if not cfg.deterministic:
            meta["behavior_return"] = pol.manifest[kind]["stochastic"]["mean"]
    elif kind == "medium-expert":
        half = cfg.steps // 2
        episodes = actor_episodes(pol.medium_step, half, rngs[0], cfg.seed) + \
            actor_episodes(pol.expert_step, cfg.steps - half, rngs[1], cfg.seed + 1_000_000)
        meta["policy_step"] = [pol.medium_step, pol.expert_step]
    elif kind == "medium-replay":
        if replay_dir is not None:
            episodes = training_replay(replay_dir, pol.medium_step)
            meta["replay_source"] = "training rollouts (exact)"
        else:
            chunks = pol.manifest["replay"]["chunks"]
            total = sum(c["steps"] for c in chunks)
            episodes = []
            for k, c in enumerate(chunks):
                # Learning moved the policy from snapshot "from" to "to" during the interval:
                # half the steps from each approximates that mixture of qualities.
                want = max(2, round(c["steps"] * cfg.steps / total))
                episodes += actor_episodes(c["from"], want // 2, rngs[0], cfg.seed + 1000 * k)
                episodes += actor_episodes(c["to"], want - want // 2, rngs[0],
                                           cfg.seed + 1000 * k + 500)
            meta["replay_source"] = "snapshot replay (interval start and end policies)"
        meta["policy_step"] = pol.medium_step
    else:
        raise ValueError(f"unknown dataset kind {kind!r}")
    bar.close()
    env.close()

    lo, hi = pol.references
    store = TrajectoryStore.from_episodes(episodes, {
        "task": task.name,
        "generator": "gac.data.locomotion_generator (PPO behaviour policies, D4RL kinds)",
        "kind": kind,
        "seed": cfg.seed,
        "steps_requested": cfg.steps,
        "stochastic": not cfg.deterministic,
        "env_id": task.env_id,
        "horizon": task.horizon,
        "d4rl_dataset": task.d4rl_dataset,
        "action_low": env.action_low,
        "action_high": env.action_high,
        "ref_min_score": lo,
        "ref_max_score": hi,
        "ref_episodes": int(pol.manifest["references"]["episodes"]),
        "behaviour_algo": pol.manifest["algo"],
        "policies_sha": pol.sha,
        **meta,
    })
    return store
