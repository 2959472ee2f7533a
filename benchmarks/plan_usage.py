"""Does a trained GAC decoder use its plan? Two probes of a checkpoint on its own training data.

    python benchmarks/plan_usage.py RUN/checkpoint.pt [--windows 256] [--episodes 10]

1. Action NLL of training windows decoded with four plans: each window's own posterior chain
   (the plan it was trained with), the same chains shuffled across windows, fresh prior samples
   z0 ~ N(0, I), and z0 = 0. Equal NLLs mean the decoder ignores the plan, so exploitation
   cannot change the behaviour; a much lower NLL with the own chain means the plan works as a
   per-episode code, and plans away from the chains decode worse.
2. Closed-loop returns with the chains of the data's best, middle and worst episodes as plans,
   next to those episodes' own returns: how much of an episode's outcome its plan carries.

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
    parser.add_argument("--episodes", type=int, default=10, help="episodes per chain group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, chains, store, task, window = load(args.checkpoint, args.data)
    nll = nll_by_plan(model, chains, store, args.windows, window, args.seed)
    print(f"action NLL per step, {args.windows} training windows of {window} steps:")
    for name, v in nll.items():
        print(f"  {name:16s} {v:.4f}")
    print(f"closed loop, {args.episodes} episodes per group, plans = the group's chains:")
    print("  group    data return  played  predicted  length")
    for name, r in returns_by_chain(model, chains, store, task, args.episodes, args.seed).items():
        print(f"  {name:8s} {r['data']:11.1f} {r['played']:7.1f} {r['predicted']:10.1f} "
              f"{r['length']:7.1f}")


if __name__ == "__main__":
    main()
