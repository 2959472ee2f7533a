"""Does a trained GAC decoder use its plan? Two probes of a checkpoint on its own training data.

    python benchmarks/plan_usage.py RUN/checkpoint.pt [--windows 256] [--episodes 10] [--fit]

1. Action NLL of training windows decoded with four plans: each window's own posterior chain
   (the plan it was trained with), the same chains shuffled across windows, fresh prior samples
   z0 ~ N(0, I), and z0 = 0. Equal NLLs mean the decoder ignores the plan, so exploitation
   cannot change the behaviour; a much lower NLL with the own chain means the plan works as a
   per-episode code, and plans away from the chains decode worse.
2. Closed-loop returns with the chains of the data's best, middle and worst episodes as plans,
   next to those episodes' own returns: how much of an episode's outcome its plan carries.

3. With ``--fit``: how well the decoder fits its segments' actions (per-dimension MSE over whole
   segments, each with its own plan and with a random one, for 200 random segments and for the
   tenth with the highest returns), next to a constant and to MLPs (256 x 256, 3,000 steps of
   256) fitted on all steps from the state alone and, where the file records each step's goal
   (``infos/goal``, maze2d), from the state and the goal the step's segment ends at: what a plan
   that carries the goal could at best give.
4. With ``--replay N``: up to N segments (at random, and among those that end at the evaluation
   goal) played from their own first recorded state with their own chains and with another
   segment's (envs with ``set_state``: maze2d), and the share that reaches where the segment
   ended: whether the decoder, in closed loop, follows the plan it was trained with.

The data is the file the run trained on (the checkpoint's metadata names it) unless ``--data``
is given. Results feed the locomotion section of docs/design-notes.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gac.data.datasets import resolve_dataset
from gac.data.store import DataError, TrajectoryStore
from gac.model import GACModel
from gac.rollout import make_envs, rollout
from gac.runs import policy_from_state
from gac.tasks import get_task
from gac.train.checkpoint import load_checkpoint


def nll_by_plan(model: GACModel, chains: torch.Tensor, store: TrajectoryStore, windows: int,
                window: int, seed: int = 0) -> dict[str, float]:
    """Mean per-step action NLL of ``windows`` random training windows under each plan."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    b = {k: torch.from_numpy(np.ascontiguousarray(v))
         for k, v in store.sample_windows(rng, windows, window, 0, None).items()}
    own = chains[b["episode_index"]]
    plans = {"own chain": own, "shuffled chains": own[torch.randperm(len(own), generator=gen)],
             "prior sample": torch.randn(own.shape, generator=gen), "zero": torch.zeros_like(own)}
    model.eval()
    with torch.no_grad():
        return {name: float(model.step_action_nll(b, model.prior(z0))) for name, z0 in plans.items()}


def top_tenth(store: TrajectoryStore) -> np.ndarray:
    """The tenth of the store's segments with the highest returns (at least one), best first."""
    return np.argsort(-store.returns, kind="stable")[: max(1, store.num_episodes // 10)]


def segment_mse(model: GACModel, chains: torch.Tensor, store: TrajectoryStore,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """Per-dimension action MSE of the decoder over whole segments with their own plans and with
    random ones, for 200 random segments ("all") and the top tenth by return, and a constant's."""
    rng = np.random.default_rng(seed)
    y = store.returns
    groups = {"all": rng.choice(len(y), min(200, len(y)), replace=False),
              "top tenth": top_tenth(store)}
    mean_action = torch.as_tensor(store.actions.mean(0))
    model.eval()
    out = {}
    for name, idx in groups.items():
        se = {"own plan": 0.0, "random plan": 0.0, "constant": 0.0}
        n = 0
        for i in idx:
            s, length = store.starts[i], store.lengths[i]
            obs = torch.as_tensor(store.observations[s:s + length])[None]
            act = torch.as_tensor(store.actions[s:s + length])[None]
            t = torch.arange(length)[None].clamp(max=model.cfg.max_timestep - 1)
            other = int(rng.integers(len(y)))
            with torch.no_grad():
                for key, plan in (("own plan", chains[i:i + 1]), ("random plan", chains[other:other + 1])):
                    mu = model.action_means(obs, act, t, model.prior(plan))
                    se[key] += float(((mu - act) ** 2).sum())
            se["constant"] += float(((mean_action - act) ** 2).sum())
            n += act[0].numel()
        out[name] = {k: v / n for k, v in se.items()}
    return out


def mlp_references(store: TrajectoryStore, goals: np.ndarray | None, steps: int = 3000,
                   seed: int = 0) -> dict[str, dict[str, float]]:
    """Per-dimension action MSE (on all steps and on the top tenth of segments) of MLPs fitted
    from the state and, with ``goals`` (one per step), from the state and its segment's goal."""
    obs = store.observations.astype(np.float32)
    act = torch.as_tensor(store.actions.astype(np.float32))
    state = (obs - obs.mean(0)) / (obs.std(0) + 1e-6)
    inputs = {"MLP, state": state}
    if goals is not None:
        ends = np.repeat(store.starts + store.lengths - 1, store.lengths)  # each step's segment end
        g = goals[ends].astype(np.float32)
        inputs["MLP, state and goal"] = np.concatenate([state, (g - g.mean(0)) / (g.std(0) + 1e-6)], 1)
    top_steps = np.concatenate([np.arange(store.starts[i], store.starts[i] + store.lengths[i])
                                for i in top_tenth(store)])
    out = {}
    for name, x in inputs.items():
        torch.manual_seed(seed)
        x = torch.as_tensor(x)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, act.shape[1]))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            i = torch.randint(len(x), (256,), generator=gen)
            loss = ((net(x[i]) - act[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            err = (net(x) - act) ** 2
        out[name] = {"all": float(err.mean()), "top tenth": float(err[top_steps].mean())}
    return out


def step_goals(store: TrajectoryStore) -> np.ndarray | None:
    """Each step's goal from the file's ``infos/goal`` (maze2d), else None."""
    import h5py

    source = store.metadata.get("source")
    if not source:
        return None
    with h5py.File(source, "r") as f:
        if "infos/goal" not in f or len(f["infos/goal"]) != store.num_steps:
            return None
        return f["infos/goal"][:]


def returns_by_chain(model: GACModel, chains: torch.Tensor, store: TrajectoryStore, task: Any,
                     episodes: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Closed-loop returns with the chains of the best, middle and worst ``episodes`` episodes."""
    order = np.argsort(store.returns, kind="stable")
    mid = len(order) // 2 - episodes // 2
    groups = {"best": order[-episodes:], "middle": order[mid:mid + episodes],
              "worst": order[:episodes]}
    envs = make_envs(task.make_env, episodes)
    out = {}
    for name, idx in groups.items():
        z0 = chains[torch.as_tensor(idx)]
        res = rollout(model, envs, task.horizon, len(idx), seed, planner=lambda s0, g, z=z0: z)
        out[name] = {"data": float(store.returns[idx].mean()), "played": float(res["returns"].mean()),
                     "predicted": float(res["predicted"].mean()),
                     "length": float(res["lengths"].mean())}
    for env in envs:
        env.close()
    return out


def replay_from_starts(model: GACModel, chains: torch.Tensor, store: TrajectoryStore, task: Any,
                       segments: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Each segment played from its own first recorded state (``env.set_state``: maze2d) with
    its own chain and with another segment's, for up to ``segments`` random segments of 40 steps
    or more that end 2 or more away from where they start and (second group) those of them that
    end at the evaluation goal: the share that comes within 0.5 of the segment's last position
    within its length + 100 steps. The decoder's fit is per step; this is whether, in closed
    loop from the very state its plan was inferred for, it reproduces where the segment went."""
    env0 = task.make_env()
    if not hasattr(env0, "set_state"):
        env0.close()
        return {}
    first, last = store.starts, store.starts + store.lengths - 1
    start_obs, end_obs = store.observations[first], store.observations[last]
    moving = np.flatnonzero((store.lengths >= 40)
                            & (np.linalg.norm(end_obs[:, :2] - start_obs[:, :2], axis=1) >= 2))
    rng = np.random.default_rng(seed)
    groups = {"random": rng.permutation(moving)[:segments]}
    goal = getattr(env0, "goal", None)
    if goal is not None:
        at_goal = moving[np.linalg.norm(end_obs[moving, :2] - goal, axis=1) <= 0.5]
        groups["ending at the goal"] = rng.permutation(at_goal)[:segments]
    env0.close()
    out = {}
    for name, idx in groups.items():
        if not len(idx):
            continue
        other = idx[(np.arange(len(idx)) + 1) % len(idx)]  # another segment of the group
        row = {"segments": float(len(idx))}
        for key, plans in (("own plan", idx), ("another's plan", other)):
            envs = [task.make_env() for _ in idx]
            for e in envs:
                e.reset(seed=0)
            obs = np.array([e.set_state(start_obs[i]) for e, i in zip(envs, idx, strict=True)])
            cache = model.start_episode(model.prior(chains[torch.as_tensor(plans)]))
            target, limit = end_obs[idx, :2], store.lengths[idx] + 100
            reached = np.zeros(len(idx), dtype=bool)
            for t in range(int(limit.max())):
                a = model.act(cache, torch.as_tensor(obs, dtype=torch.float32),
                              min(t, model.cfg.max_timestep - 1))
                model.observe_action(cache, a)
                obs = np.array([e.step(x)[0] for e, x in zip(envs, a.numpy(), strict=True)])
                reached |= (np.linalg.norm(obs[:, :2] - target, axis=1) <= 0.5) & (t < limit)
            for e in envs:
                e.close()
            row[key] = float(reached.mean())
        out[name] = row
    return out


def load(checkpoint: str | Path, data: str | None = None
         ) -> tuple[GACModel, torch.Tensor, TrajectoryStore, Any, int]:
    """Model, chains, training store, task and the run's window length from a checkpoint."""
    state = load_checkpoint(checkpoint)  # read once: the policy and its chains
    model, cfg, meta, _ = policy_from_state(state, checkpoint)
    chains = state["chains"]["z"]
    source = data or meta.get("source")
    if not source:
        raise DataError(f"{checkpoint}: the metadata names no data file; pass --data")
    store = resolve_dataset(str(source), progress=False)
    if store.num_episodes != len(chains):
        raise DataError(f"{source} has {store.num_episodes} episodes but {checkpoint} holds "
                        f"{len(chains)} chains: not the run's training data")
    return model, chains, store, get_task(cfg.task), cfg.train.window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default=None, help="the run's training file (default: from metadata)")
    parser.add_argument("--windows", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=10,
                        help="episodes per chain group (0: no closed-loop probe)")
    parser.add_argument("--replay", type=int, default=0,
                        help="segments per group replayed from their own first state (maze2d)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fit", action="store_true",
                        help="also the decoder's fit of whole segments, next to MLP references")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, chains, store, task, window = load(args.checkpoint, args.data)
    nll = nll_by_plan(model, chains, store, args.windows, window, args.seed)
    print(f"action NLL per step, {args.windows} training windows of {window} steps:")
    for name, v in nll.items():
        print(f"  {name:16s} {v:.4f}")
    if args.episodes > 0:
        print(f"closed loop, {args.episodes} episodes per group, plans = the group's chains:")
        print("  group    data return  played  predicted  length")
        for name, r in returns_by_chain(model, chains, store, task, args.episodes,
                                        args.seed).items():
            print(f"  {name:8s} {r['data']:11.1f} {r['played']:7.1f} {r['predicted']:10.1f} "
                  f"{r['length']:7.1f}")
    if args.replay > 0:
        rows = replay_from_starts(model, chains, store, task, args.replay, args.seed)
        if not rows:
            print(f"replay: {task.name}'s environment cannot be set to a recorded state")
        print("segments replayed from their own first state: share that reaches the segment's "
              "end (within 0.5, its length + 100 steps)")
        for name, r in rows.items():
            other = r["another's plan"]
            print(f"  {name:20s} {int(r['segments']):3d} segments: own plan {r['own plan']:.0%}, "
                  f"another's plan {other:.0%}")
    if args.fit:
        print("per-dimension action MSE over whole segments (decoder) and all steps (MLPs):")
        print(f"  {'':22s} {'all':>8s} {'top tenth':>10s}")
        fits = segment_mse(model, chains, store, args.seed)
        for key in ("own plan", "random plan", "constant"):
            print(f"  {'decoder, ' + key if key != 'constant' else 'constant':22s} "
                  f"{fits['all'][key]:8.3f} {fits['top tenth'][key]:10.3f}")
        for name, r in mlp_references(store, step_goals(store), seed=args.seed).items():
            print(f"  {name:22s} {r['all']:8.3f} {r['top tenth']:10.3f}")


if __name__ == "__main__":
    main()
