"""Dataset generation speed against raw environment stepping, measured in the same run.

For each maze: steps/s of the real ``generate_maze_dataset`` (reference_episodes=0, no progress
bar, environment construction included), next to steps/s of random actions stepped through the
same ``MazeEnv`` wrapper and through a plain ``gym.make`` PointMaze (its default wrappers,
resetting when an episode ends). Target: generation / MazeEnv >= 0.5.

    python benchmarks/data_generation.py --steps 50000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from gac.data.maze_generator import MazeDataConfig, generate_maze_dataset
from gac.tasks import get_task

MAZES = ("umaze", "medium", "large")


def generation_rate(task_name: str, steps: int) -> float:
    cfg = MazeDataConfig(steps=steps, seed=0, reference_episodes=0)
    t0 = time.perf_counter()
    generate_maze_dataset(get_task(task_name), cfg, progress=False)
    return steps / (time.perf_counter() - t0)


def maze_env_rate(task_name: str, steps: int) -> float:
    env = get_task(task_name).make_env()
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 2))
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def gym_rate(env_id: str, steps: int) -> float:
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 2)).astype(np.float32)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="steps per measurement")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    generation_rate("pointmaze-umaze-goal", 500)  # warm imports and MuJoCo before timing

    header = (f"{'maze':<8}{'generate/s':>12}{'MazeEnv/s':>12}{'gym.make/s':>12}"
              f"{'gen/MazeEnv':>13}{'gen/gym':>9}")
    print(f"{args.steps} steps per measurement")
    print(header)
    print("-" * len(header))
    for maze in MAZES:
        task = f"pointmaze-{maze}-goal"
        gen = generation_rate(task, args.steps)
        raw = maze_env_rate(task, args.steps)
        plain = gym_rate(get_task(task).spec.env_id, args.steps)
        print(f"{maze:<8}{gen:>12,.0f}{raw:>12,.0f}{plain:>12,.0f}{gen / raw:>13.2f}"
              f"{gen / plain:>9.2f}")


if __name__ == "__main__":
    main()
