"""Peers for the offline-to-online benchmark: d3rlpy's IQL, Cal-QL and ReBRAC on gac's data and
tasks, and the d3rlpy plumbing every benchmark shares (data conversion, offline fit, playing).

    python benchmarks/peers_d3rlpy.py --algo calql --task maze2d-medium --seed 0 \
        --offline-steps 2000 --online-env-steps 14400 --stages 3 [--dataset PATH] [--eval-episodes 20]

Needs ``pip install -e ".[peers]"`` (d3rlpy 2.8.0). Each run: fit() for ``offline_steps``
gradient steps on the task's dataset (step rewards as stored, episodes split at our timeouts),
evaluate, then ``stages`` rounds of fit_online() on the task's evaluation env (one gradient
step per environment step, ``online_env_steps`` in all), each followed by an evaluation: the
score against environment steps, as GAC's stages give it. Settings: ``make_algo``.
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
from gac.tasks import get_task, normalized_score
from gac.tasks.gym_adapter import GymTaskEnv, make_gym_env

ALGOS = ("calql", "iql", "rebrac", "calql-lagrange")  # the last: Cal-QL untuned, for the record
EVAL_SEED_BASE = 10_000  # gac.evaluation.evaluate: seed s plays episodes from 10_000 * (s + 1)
CALQL_BLOCK = 1000  # Cal-QL fine-tunes in blocks: collect this many env steps, then as many updates
SPARSE = ("maze2d", "pointmaze-goal")  # task families with 0/1 goal rewards

# d3rlpy imports legacy gym, which prints an unmaintained-package notice to stderr on import.
with contextlib.redirect_stderr(io.StringIO()):
    import d3rlpy

# d3rlpy logs every fit() through structlog to stdout (and warns that fit_online() reuses the
# models fit() built, which is the point here): keep benchmark output to our own lines.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

# Cal-QL on the sparse mazes. d3rlpy's AntMaze reproduction adapts the CQL weight by a Lagrange
# multiplier toward an action gap of 0.8; on our 0/1 reward that multiplier ran to ~150 and the
# critic loss to ~2,000, and the policy did not learn (docs/results-history.md,
# pointmaze-medium-goal). Changed against that failure: a fixed weight (no Lagrange
# multiplier) and the rewards scaled by CALQL_REWARD_SCALE (Cal-QL's own sparse-task setting
# scales by 10), which keeps the Monte-Carlo lower bound valid (rewards stay >= 0).
# "calql-lagrange" is the reproduction's setting, to run beside it.
CALQL_FIXED_WEIGHT = 5.0
CALQL_REWARD_SCALE = 10.0


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


def fit(peer: Any, data: TrajectoryStore | d3rlpy.dataset.MDPDataset, steps: int,
        progress: bool = False) -> float:
    """``steps`` gradient steps of d3rlpy's offline fit() (one epoch of exactly that many);
    returns the wall time. Every benchmark's offline d3rlpy training goes through here."""
    dataset = to_mdp_dataset(data) if isinstance(data, TrajectoryStore) else data
    t0 = time.time()
    peer.fit(dataset, n_steps=steps, n_steps_per_epoch=max(steps, 1), show_progress=progress,
             save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    return time.time() - t0


def make_algo(algo: str, offline_steps: int, hidden: Sequence[int] | None = None,
              sparse: bool = True) -> Any:
    """A d3rlpy peer on CPU. ``hidden`` replaces every network's hidden layers (the
    reproductions': 256x256, Cal-QL's critic 4x256, ReBRAC's 3x256) to fit CPU budgets;
    ``sparse``: the settings for 0/1 goal rewards (mazes), else locomotion's."""
    def mlp(default: Sequence[int], layer_norm: bool = False) -> Any:
        return d3rlpy.models.encoders.VectorEncoderFactory(
            list(default if hidden is None else hidden), use_layer_norm=layer_norm)

    if algo in ("calql", "calql-lagrange"):
        # Cal-QL's MC lower bound (returns-to-go) comes from the transition picker: the default
        # picker's discounted sum of the episode's remaining (scaled) rewards. With rewards >= 0
        # that is already a valid lower bound, so the AntMaze SparseRewardTransitionPicker (a
        # constant failure return for -1-per-step rewards) is not needed.
        sparse_kw: dict[str, Any] = dict(
            alpha_learning_rate=0.0, initial_alpha=1.0, conservative_weight=CALQL_FIXED_WEIGHT,
            reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(CALQL_REWARD_SCALE))
        lagrange_kw: dict[str, Any] = dict(alpha_learning_rate=3e-4, initial_alpha=2.72,
                                           conservative_weight=5.0, alpha_threshold=0.8)
        return d3rlpy.algos.CalQLConfig(
            actor_learning_rate=1e-4, critic_learning_rate=3e-4, temp_learning_rate=1e-4,
            batch_size=256, actor_encoder_factory=mlp([256, 256]),
            critic_encoder_factory=mlp([256, 256, 256, 256]), max_q_backup=True,
            **(sparse_kw if sparse and algo == "calql" else lagrange_kw),
        ).create(device="cpu:0")
    if algo == "iql":
        # Sparse: the AntMaze fine-tuning reproduction (expectile 0.9, temperature 10); dense:
        # the locomotion reproduction (expectile 0.7, temperature 3, returns scaled to 1,000).
        scaler = (None if sparse else
                  d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0))
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(
                    T_max=max(offline_steps, 1))),
            batch_size=256, weight_temp=10.0 if sparse else 3.0, max_weight=100.0,
            expectile=0.9 if sparse else 0.7, reward_scaler=scaler,
            actor_encoder_factory=mlp([256, 256]), critic_encoder_factory=mlp([256, 256]),
            value_encoder_factory=mlp([256, 256]),
        ).create(device="cpu:0")
    if algo == "rebrac":
        # d3rlpy's reproduction (reproductions/offline/rebrac.py): 3 hidden layers, LayerNorm in
        # the critic, batch 1024, lr 1e-3, standardised observations; its default penalties
        # (0.01, 0.01) for the mazes (its table has none for them), its hopper-/walker2d-
        # medium-replay rows otherwise (set in run_peer by dataset name).
        return d3rlpy.algos.ReBRACConfig(
            actor_learning_rate=1e-3, critic_learning_rate=1e-3, batch_size=1024, gamma=0.99,
            actor_encoder_factory=mlp([256, 256, 256]),
            critic_encoder_factory=mlp([256, 256, 256], layer_norm=True),
            target_smoothing_sigma=0.2, target_smoothing_clip=0.5, update_actor_interval=2,
            actor_beta=0.01, critic_beta=0.01,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        ).create(device="cpu:0")
    raise ValueError(f"unknown peer algorithm {algo!r}; known: {', '.join(ALGOS)}")


# ReBRAC's penalties (actor, critic) from d3rlpy's reproduction table, by dataset kind.
REBRAC_BETAS = {"hopper-medium-replay": (0.05, 0.5), "walker2d-medium-replay": (0.05, 0.01),
                "hopper-medium": (0.01, 0.001), "walker2d-medium": (0.05, 0.1)}


def rebrac_betas(task: str) -> tuple[float, float]:
    """The reproduction table's row for the longest dataset name in ``task``, else (0.01, 0.01)."""
    rows = [k for k in REBRAC_BETAS if k in task]
    return REBRAC_BETAS[max(rows, key=len)] if rows else (0.01, 0.01)


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
    if algo.startswith("calql"):
        # Cal-QL's reproduction: half of each batch from the new transitions, half from the data.
        online = d3rlpy.dataset.create_fifo_replay_buffer(limit=limit, env=env)
        return d3rlpy.dataset.MixedReplayBuffer(primary_replay_buffer=online,
                                                secondary_replay_buffer=offline, secondary_mix_ratio=0.5)
    # IQL's and ReBRAC's: one FIFO buffer pre-filled with the dataset's episodes.
    return d3rlpy.dataset.create_fifo_replay_buffer(limit=limit, episodes=offline.episodes)


def run_peer(algo: str, task: str, seed: int, offline_steps: int, online_env_steps: int,
             eval_episodes: int = 20, dataset: str | None = None, hidden: Sequence[int] | None = None,
             progress: bool = False, stages: int = 1) -> dict[str, Any]:
    """Offline training, then online fine-tuning in ``stages`` equal rounds, of one d3rlpy peer;
    the score before and after every round (``curve``: (env steps, score) pairs).

    ``progress`` shows d3rlpy's own bars (one for fit(), one per fit_online()).
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown peer algorithm {algo!r}; known: {', '.join(ALGOS)}")
    if offline_steps < 1 or online_env_steps < 0 or eval_episodes < 1 or stages < 1:
        # fit() with 0 steps builds no networks, so there would be no policy to evaluate.
        raise ValueError(f"need offline_steps >= 1, online_env_steps >= 0, eval_episodes >= 1, "
                         f"stages >= 1; got {offline_steps}, {online_env_steps}, {eval_episodes}, "
                         f"{stages}")
    t0 = time.time()
    store = resolve_dataset(dataset or task, seed=seed, progress=False)  # a task: the seed's file
    task = store.metadata.get("task", task) if dataset else task
    ref = _reference(store)
    offline = to_mdp_dataset(store)
    d3rlpy.seed(seed)
    peer = make_algo(algo, offline_steps, hidden, sparse=get_task(task).family in SPARSE)
    if algo == "rebrac":
        peer.config.actor_beta, peer.config.critic_beta = rebrac_betas(task)
    fit(peer, offline, offline_steps, progress)
    eval_env = make_gym_env(task)
    curve = [(0, evaluate(peer, eval_env, eval_episodes, ref))]

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
    # ReBRAC is deterministic: its online phase explores with Gaussian action noise (TD3's 0.1).
    explorer = d3rlpy.algos.NormalNoise(std=0.1) if algo == "rebrac" else None
    done = 0
    for k in range(stages):
        n = online_env_steps * (k + 1) // stages - done
        if n == 0:
            continue
        # Cal-QL's reproduction collects 1000 env steps, then makes 1000 updates (so the online
        # half of a batch is never drawn from a handful of transitions); the others update once
        # per env step.
        block = min(CALQL_BLOCK, n) if algo.startswith("calql") else 1
        # update_start_step=1: a mixed batch cannot be drawn before the online buffer holds a step.
        peer.fit_online(env, buffer=buffer, explorer=explorer, n_steps=n, n_steps_per_epoch=n,
                        update_interval=block, n_updates=block,
                        update_start_step=int(algo.startswith("calql") and done == 0), **{
                            "logger_adapter": d3rlpy.logging.NoopAdapterFactory(),
                            "show_progress": progress})
        # Blocks cut short by the round's end still get their updates: one update per env step.
        for _ in range(n % block):
            peer.update(buffer.sample_transition_batch(peer.config.batch_size))
        # The next round starts with env.reset(): close the episode in progress as truncated
        # (a no-op where the round ended with an episode).
        buffer.clip_episode(False)
        done += n
        curve.append((done, evaluate(peer, eval_env, eval_episodes, ref)))
    env.close()
    eval_env.close()
    return {"algo": algo, "task": task, "seed": seed, "offline_score": curve[0][1],
            "final_score": curve[-1][1], "delta": curve[-1][1] - curve[0][1], "curve": curve,
            "env_steps": online_env_steps, "offline_steps": offline_steps,
            "online_updates": online_env_steps, "wall_s": time.time() - t0,
            "hidden": list(hidden) if hidden else "reproduction"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, required=True)
    parser.add_argument("--task", default="maze2d-medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offline-steps", type=int, default=2000)
    parser.add_argument("--online-env-steps", type=int, default=14_400)
    parser.add_argument("--stages", type=int, default=3, help="evaluations during fine-tuning")
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
                   progress=True, stages=args.stages)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
