"""Peers for the offline-to-online benchmark: d3rlpy's Cal-QL and IQL on gac's data and tasks.

    python benchmarks/peers_d3rlpy.py --algo calql --task pointmaze-medium-goal --seed 0 \
        --offline-steps 20000 --online-env-steps 28800 [--dataset PATH] [--eval-episodes 20]

Needs ``pip install -e ".[peers]"`` (d3rlpy 2.8.0). Each run: fit() for ``offline_steps``
gradient steps on the task's dataset (sparse rewards as stored, episodes split at our timeouts),
evaluate, fit_online() for ``online_env_steps`` environment steps on the task's evaluation env
(one gradient step per environment step), evaluate again. Hyperparameters follow d3rlpy's
fine-tuning reproductions (reproductions/finetuning/{cal_ql,iql}_finetune.py, their AntMaze
settings: the closest sparse goal-reaching setting) except where noted at ``make_algo``.
Evaluation episodes start from the same reset seeds as GAC's own evaluation.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog
import torch

from gac.data.datasets import resolve_dataset
from gac.data.store import DataError, TrajectoryStore
from gac.tasks import normalized_score
from gac.tasks.gym_adapter import GymTaskEnv, make_gym_env

ALGOS = ("calql", "iql")
EVAL_SEED_BASE = 10_000  # gac.evaluation.evaluate: seed s plays episodes from 10_000 * (s + 1)
CALQL_BLOCK = 1000  # Cal-QL fine-tunes in blocks: collect this many env steps, then as many updates

# d3rlpy imports legacy gym, which prints an unmaintained-package notice to stderr on import.
with contextlib.redirect_stderr(io.StringIO()):
    import d3rlpy

# d3rlpy logs every fit() through structlog to stdout (and warns that fit_online() reuses the
# models fit() built, which is the point here): keep benchmark output to our own lines.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def to_mdp_dataset(store: TrajectoryStore) -> d3rlpy.dataset.MDPDataset:
    """Our flat D4RL-layout arrays as d3rlpy episodes, split where ours are (terminals/timeouts)."""
    if store.rewards is None or np.isnan(store.rewards).any():
        raise DataError("d3rlpy peers need step rewards; this dataset has return-only episodes")
    return d3rlpy.dataset.MDPDataset(
        observations=store.observations.astype(np.float32),
        actions=store.actions.astype(np.float32),
        rewards=store.rewards.astype(np.float32),
        terminals=store.terminals.astype(np.float32),
        timeouts=store.timeouts.astype(np.float32),
        action_space=d3rlpy.ActionSpace.CONTINUOUS,
        action_size=store.act_dim,
    )


def make_algo(algo: str, offline_steps: int, hidden: Sequence[int] | None = None) -> Any:
    """Configs of d3rlpy's fine-tuning reproductions, on CPU, without the AntMaze reward shift
    (rewards stay gac's 0/1 sparse rewards, as GAC sees them). ``hidden`` replaces every network's
    hidden layers (reproductions: 256x256, Cal-QL's critic 4x256) to fit CPU budgets."""
    def mlp(default: Sequence[int]) -> Any:
        return d3rlpy.models.encoders.VectorEncoderFactory(list(default if hidden is None else hidden))

    if algo == "calql":
        # Cal-QL's MC lower bound (returns-to-go) comes from the transition picker: the default
        # picker's discounted sum of the episode's remaining rewards. With rewards >= 0 that is
        # already a valid lower bound, so the AntMaze SparseRewardTransitionPicker (a constant
        # failure return for -1-per-step rewards) is not needed.
        return d3rlpy.algos.CalQLConfig(
            actor_learning_rate=1e-4,
            critic_learning_rate=3e-4,
            temp_learning_rate=1e-4,
            alpha_learning_rate=3e-4,
            initial_alpha=2.72,
            batch_size=256,
            conservative_weight=5.0,
            actor_encoder_factory=mlp([256, 256]),
            critic_encoder_factory=mlp([256, 256, 256, 256]),
            alpha_threshold=0.8,
            max_q_backup=True,
        ).create(device="cpu:0")
    if algo == "iql":
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=max(offline_steps, 1))),
            batch_size=256,
            weight_temp=10.0,
            max_weight=100.0,
            expectile=0.9,
            actor_encoder_factory=mlp([256, 256]),
            critic_encoder_factory=mlp([256, 256]),
            value_encoder_factory=mlp([256, 256]),
        ).create(device="cpu:0")
    raise ValueError(f"unknown peer algorithm {algo!r}; known: {', '.join(ALGOS)}")


def play(act: Any, env: GymTaskEnv, episodes: int, seed: int = 0, reset: Any = None) -> list[float]:
    """Returns of ``episodes`` full-horizon episodes of ``act(obs, last_reward) -> action``, from
    the reset seeds of GAC's evaluation seed ``seed``; ``reset()`` runs at each episode start
    (stateful policies such as d3rlpy's DT wrapper)."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_BASE * (seed + 1) + k)
        if reset is not None:
            reset()
        ret, reward, done = 0.0, 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs, reward))
            ret += reward
            done = terminated or truncated
        returns.append(ret)
    return returns


def evaluate(policy: Any, env: GymTaskEnv, episodes: int, ref: tuple[float, float]) -> float:
    """Mean normalised score of the deterministic policy over ``episodes`` full-horizon episodes."""
    returns = play(lambda obs, _: policy.predict(obs[None])[0], env, episodes)
    return float(normalized_score(float(np.mean(returns)), *ref))


def _reference(store: TrajectoryStore) -> tuple[float, float]:
    meta = store.metadata
    if "ref_min_score" not in meta or "ref_max_score" not in meta:
        raise DataError("dataset has no ref_min_score/ref_max_score metadata: cannot normalise scores")
    return float(meta["ref_min_score"]), float(meta["ref_max_score"])


def _finetune_buffer(algo: str, offline: d3rlpy.dataset.MDPDataset, limit: int, env: GymTaskEnv) -> Any:
    if algo == "calql":
        # Cal-QL's reproduction: half of each batch from the new transitions, half from the data.
        online = d3rlpy.dataset.create_fifo_replay_buffer(limit=limit, env=env)
        return d3rlpy.dataset.MixedReplayBuffer(primary_replay_buffer=online,
                                                secondary_replay_buffer=offline, secondary_mix_ratio=0.5)
    # IQL's reproduction: one FIFO buffer pre-filled with the dataset's episodes.
    return d3rlpy.dataset.create_fifo_replay_buffer(limit=limit, episodes=offline.episodes)


def run_peer(algo: str, task: str, seed: int, offline_steps: int, online_env_steps: int,
             eval_episodes: int = 20, dataset: str | None = None, hidden: Sequence[int] | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Offline training, then online fine-tuning, of one d3rlpy peer; scores before and after.

    ``progress`` shows d3rlpy's own bars (one for fit(), one for fit_online()).
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown peer algorithm {algo!r}; known: {', '.join(ALGOS)}")
    if offline_steps < 1 or online_env_steps < 0 or eval_episodes < 1:
        # fit() with 0 steps builds no networks, so there would be no policy to evaluate.
        raise ValueError(f"need offline_steps >= 1, online_env_steps >= 0, eval_episodes >= 1; got "
                         f"{offline_steps}, {online_env_steps}, {eval_episodes}")
    t0 = time.time()
    store = resolve_dataset(dataset or task, seed=seed, progress=False)  # a task: the seed's file
    ref = _reference(store)
    offline = to_mdp_dataset(store)
    d3rlpy.seed(seed)
    peer = make_algo(algo, offline_steps, hidden)
    fit_kw: dict[str, Any] = {"logger_adapter": d3rlpy.logging.NoopAdapterFactory(),
                              "show_progress": progress}

    # fit() runs n_steps // n_steps_per_epoch epochs: one epoch of exactly offline_steps.
    peer.fit(offline, n_steps=offline_steps, n_steps_per_epoch=max(offline_steps, 1), **fit_kw)
    eval_env = make_gym_env(task)
    offline_score = evaluate(peer, eval_env, eval_episodes, ref)

    if algo == "iql":
        # The reproduction restores the actor's learning rate after the offline cosine decay. It
        # leaves the scheduler running, and torch's recursive cosine form then multiplies the
        # restored rate by ratios > 1 past T_max (it blows up): fine-tune at a constant rate.
        actor_optim = peer.impl._modules.actor_optim
        actor_optim._lr_scheduler = None
        for group in actor_optim.optim.param_groups:
            group["lr"] = peer.config.actor_learning_rate

    env = make_gym_env(task)
    d3rlpy.envs.seed_env(env, seed)  # later resets are unseeded and continue this RNG
    buffer = _finetune_buffer(algo, offline, store.num_steps + online_env_steps + 1, env)
    # Cal-QL's reproduction collects 1000 env steps, then makes 1000 updates (so the online half
    # of a batch is never drawn from a handful of transitions); IQL's updates once per env step.
    block = min(CALQL_BLOCK, online_env_steps) if algo == "calql" else 1
    if online_env_steps > 0:
        # update_start_step=1: a mixed batch cannot be drawn before the online buffer holds a step.
        peer.fit_online(env, buffer=buffer, n_steps=online_env_steps, n_steps_per_epoch=online_env_steps,
                        update_interval=block, n_updates=block, update_start_step=int(algo == "calql"),
                        **fit_kw)
        # Blocks cut short by the budget's end still get their updates: one update per env step.
        for _ in range(online_env_steps % block):
            peer.update(buffer.sample_transition_batch(peer.config.batch_size))
    final_score = evaluate(peer, eval_env, eval_episodes, ref)
    env.close()
    eval_env.close()
    return {"algo": algo, "task": task, "seed": seed, "offline_score": offline_score,
            "final_score": final_score, "delta": final_score - offline_score,
            "env_steps": online_env_steps, "offline_steps": offline_steps,
            "wall_s": time.time() - t0, "hidden": list(hidden) if hidden else "reproduction"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, required=True)
    parser.add_argument("--task", default="pointmaze-medium-goal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offline-steps", type=int, default=20_000)
    parser.add_argument("--online-env-steps", type=int, default=28_800)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--dataset", default=None, help="HDF5 path (default: the task's dataset)")
    parser.add_argument("--hidden", default="", help="e.g. 128,128: every network's hidden layers "
                        "(default: the reproductions' sizes)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    res = run_peer(args.algo, args.task, args.seed, args.offline_steps, args.online_env_steps,
                   eval_episodes=args.eval_episodes, dataset=args.dataset,
                   hidden=[int(h) for h in args.hidden.split(",")] if args.hidden else None,
                   progress=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
