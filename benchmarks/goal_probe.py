"""What a maze2d policy does at the evaluation goal: how often and how soon it gets there, how
long it stays, and what the decoder says there under each of the bank's plans.

Episodes: played with the checkpoint's inference (or ``--set`` overrides) on a held-out
evaluation seed; printed are the mean return, the share of episodes that come within the
goal's radius (0.5), the median step of the first arrival, and the share of the steps after it
spent within the radius. Decoder: the action mean at rest at the goal and half a radius to each
side of it, under every bank plan and under the ``arrive`` mode's plans (the segments that end
where the best-return ones start): if they all agree, no choice of plan can hold the agent there.

Where the episodes stay: the cells where most of them spend the second half of the episode,
with each cell's distance to the goal in cells along the corridors; ``--plot PNG`` also draws the
share of all steps per cell over the maze.

    python benchmarks/goal_probe.py runs/.../checkpoint.pt [--seed 100] [--episodes 48]
                                    [--set inference.mode=arrive ...] [--plot where.png]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from gac.config import apply_overrides
from gac.evaluation.plots import maze_occupancy
from gac.inference.bank import arrivals
from gac.rollout import make_envs, rollout
from gac.runs import load_policy
from gac.tasks import get_task
from gac.tasks.maze import shortest_paths

RADIUS = 0.5  # D4RL's sparse maze2d reward: within 0.5 of the goal


def episode_stats(episodes: list, goal: np.ndarray) -> tuple[int, list[int], list[float]]:
    """(episodes that reach the goal, their first steps there, their shares of the steps
    after it within the radius)."""
    first, stay = [], []
    for e in episodes:
        near = np.linalg.norm(e.observations[:, :2] - goal, axis=1) <= RADIUS
        if near.any():
            k = int(np.argmax(near))
            first.append(k)
            stay.append(float(near[k:].mean()))
    return len(first), first, stay


def corridor_distances(walls: np.ndarray, goal_cell: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Each open cell's distance to ``goal_cell`` in cells, moving between open neighbours (the
    waypoint controller's search), for the cells that reach it."""
    dist = shortest_paths(~np.asarray(walls, dtype=bool), goal_cell)[1]
    return {(int(r), int(c)): int(dist[r, c]) for r, c in zip(*np.nonzero(dist >= 0), strict=True)}


def late_cells(episodes: list) -> Counter:
    """For each episode, the cell where it spends most of its second half: episode counts."""
    out: Counter = Counter()
    for e in episodes:
        late = np.rint(e.observations[len(e.observations) // 2:, :2]).astype(int)
        out[Counter(map(tuple, late.tolist())).most_common(1)[0][0]] += 1
    return out


def fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:+.2f}" for x in v) + ")"


def decoder_field(model, bank, icfg, goal: np.ndarray) -> dict[tuple[float, float], dict]:
    """Action means (plans, act_dim) at rest at the goal and half a radius to each side of it,
    under every bank plan ("all plans") and under the ``arrive`` mode's plans ("arrivals")."""
    arrive = arrivals(model, bank, icfg.elite_episodes, icfg.stitch_radius, icfg.local_dims)
    plans = {"all plans": torch.arange(len(bank.returns)), "arrivals": arrive}
    field = {}
    for dx, dy in ((0, 0), (-RADIUS, 0), (RADIUS, 0), (0, -RADIUS), (0, RADIUS)):
        point = (float(goal[0] + dx), float(goal[1] + dy))
        rest = torch.tensor([[*point, *[0.0] * (model.cfg.obs_dim - 2)]], dtype=torch.float32)
        field[point] = {}
        for name, idx in plans.items():
            state = model.start_episode(model.prior(bank.z0[idx]))
            field[point][name] = model.act(state, rest.expand(len(idx), -1), 0).numpy()
    return field


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--seed", type=int, default=100, help="evaluation seed (held out)")
    parser.add_argument("--episodes", type=int, default=48)
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="inference override, e.g. --set inference.mode=arrive")
    parser.add_argument("--plot", default=None, help="write the share of steps per cell (PNG)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, cfg, _, bank = load_policy(args.checkpoint)
    cfg = apply_overrides(cfg, args.sets)
    task = get_task(cfg.task)
    envs = make_envs(task.make_env, min(16, args.episodes))
    goal = getattr(envs[0], "goal", None)
    if goal is None or bank is None:
        parser.error(f"{cfg.task}: the probe needs a maze2d task's fixed goal and a plan bank")
    goal = np.asarray(goal, np.float64)
    out = rollout(model, envs, task.horizon, args.episodes, seed=10_000 * (args.seed + 1),
                  icfg=cfg.inference, bank=bank, record=True)
    for env in envs:
        env.close()
    reached, first, stay = episode_stats(out["episodes"], goal)
    label = " ".join([cfg.inference.mode, *args.sets])
    print(f"{cfg.task}, {label}: return {out['returns'].mean():.1f}; reach "
          f"{reached}/{args.episodes}, median first step "
          f"{np.median(first) if first else float('nan'):.0f}, time in radius after "
          f"{np.mean(stay) if stay else float('nan'):.0%}")
    walls = np.array(envs[0].maze.maze_map, dtype=object) == 1
    dist = corridor_distances(walls, tuple(int(v) for v in np.rint(goal)))
    print("where episodes spend their second half (cell: episodes, cells from the goal): " +
          ", ".join(f"{cell}: {n}, {dist.get(cell, '-')}"
                    for cell, n in late_cells(out["episodes"]).most_common(5)))
    if args.plot:
        xy = np.concatenate([e.observations[:, :2] for e in out["episodes"]])
        png = maze_occupancy(xy, walls, goal, args.plot, f"{cfg.task}, {label}: share of steps")
        print(f"plot: {png}")
    field = decoder_field(model, bank, cfg.inference, goal)
    sizes = {name: len(a) for name, a in next(iter(field.values())).items()}
    print(f"\ndecoder at rest near the goal {goal.tolist()}: action mean, min and max per axis "
          f"over the plans ({sizes['all plans']} in the bank, {sizes['arrivals']} arrivals)")
    for (x, y), by_plans in field.items():
        print(f"  ({x:.1f}, {y:.1f}): " + "; ".join(
            f"{name} {fmt(a.mean(0))}, min {fmt(a.min(0))}, max {fmt(a.max(0))}"
            for name, a in by_plans.items()))


if __name__ == "__main__":
    main()
