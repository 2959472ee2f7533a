"""Online collection on Ray actors: the shards of a group of episodes, played in parallel.

``OnlineRun.collect_group`` splits a group into shards (``online.collect_shards``); locally it
plays them one after another, with ``online.collector=ray`` it hands them to this module. Each
actor holds its own environments and a copy of the model; per group it gets the current
weights and plan bank (put once into Ray's object store, shared by all actors) and plays its
shards exactly as the local collector does -- ``rollout`` with the shard's batch, environment
seeds and plan generator -- so the episodes are bit-identical to local collection (same torch
build, CPU).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch

from gac.config import InferenceConfig, ModelConfig, OnlineConfig
from gac.inference import PlanBank, exploration_planner
from gac.model import GACModel
from gac.rollout import make_envs, rollout


class CollectorActor:
    """One Ray actor: environments of one task and a policy whose weights follow the learner."""

    def __init__(self, task: Any, model_cfg: ModelConfig, threads: int = 1):
        torch.set_num_threads(threads)
        self.task = task
        self.model = GACModel(model_cfg).eval()
        self.envs: list[Any] = []

    def play(self, policy: dict[str, Any], icfg: InferenceConfig, ocfg: OnlineConfig,
             y_plus: float, horizon: int, seed: int, shard: tuple[int, int, int]) -> dict[str, Any]:
        first, size, n_explore = shard
        self.model.load_state_dict(policy["weights"])
        bank = PlanBank(*policy["plan_bank"])  # elite and refine plans come from it
        if len(self.envs) < size:  # environments are made once and reused, as locally
            self.envs += make_envs(self.task.make_env, size - len(self.envs))
        planner = exploration_planner(self.model, icfg, ocfg, y_plus, n_explore, bank)
        return rollout(self.model, self.envs[:size], horizon, size, seed=seed + first,
                       planner=planner, record=True)

    def ping(self) -> bool:
        return True


def ensure_ray(address: str | None = None) -> None:
    """Start (or join, with ``address`` or ``$RAY_ADDRESS``) Ray unless this process -- a
    driver or a sweep trial running inside Ray -- is already connected."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)


class RayCollector:
    """``actors`` Ray actors playing shards of episodes of ``task`` with one shared policy."""

    def __init__(self, task: Any, model_cfg: ModelConfig, actors: int = 2, threads: int = 1,
                 address: str | None = None):
        import ray

        if actors < 1:
            raise ValueError(f"online.collector_actors={actors}: need at least one actor")
        ensure_ray(address)
        # Inside a Ray task (a sweep trial) the trial's CPUs already cover its actors: asking
        # for more could deadlock a cluster full of trials that each wait for their actors.
        nested = ray.get_runtime_context().get_task_id() is not None
        remote = ray.remote(num_cpus=0 if nested else threads)(CollectorActor)
        self.actors = [remote.remote(task, model_cfg, threads) for _ in range(actors)]
        self.key: tuple = ()

    def play(self, model: GACModel, bank: PlanBank, icfg: InferenceConfig, ocfg: OnlineConfig,
             y_plus: float, horizon: int, seed: int, shards: list[tuple[int, int, int]]
             ) -> list[dict[str, Any]]:
        """Every shard's ``rollout`` output, in shard order; shard i goes to actor i mod A."""
        import ray

        policy = ray.put({"weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                          "plan_bank": (bank.z0.detach().cpu(), bank.returns)})
        refs = [self.actors[i % len(self.actors)].play.remote(policy, icfg, ocfg, y_plus, horizon,
                                                               seed, shard)
                for i, shard in enumerate(shards)]
        return ray.get(refs)

    def ready(self) -> None:
        """Block until every actor has started (benchmarks time collection without start-up)."""
        import ray

        ray.get([a.ping.remote() for a in self.actors])

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []


# One collector per online run, dropped (and its actors with it) when the run is.
_COLLECTORS: weakref.WeakKeyDictionary[Any, RayCollector] = weakref.WeakKeyDictionary()


def collect_remote(run: Any, shards: list[tuple[int, int, int]], seed: int,
                   y_plus: float) -> list[dict[str, Any]]:
    """``OnlineRun.collect_group``'s shards played on the run's Ray actors."""
    model, cfg = run.trainer.model, run.cfg
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("online.collector=ray plays on CPU actors; it needs train.device=cpu "
                         "(identical episodes need the same device as local collection)")
    key = (run.task, model.cfg, cfg.collector_actors)
    collector = _COLLECTORS.get(run)
    if collector is None or collector.key != key:
        if collector is not None:
            collector.close()
        collector = RayCollector(run.task, model.cfg, cfg.collector_actors)
        collector.key = key
        _COLLECTORS[run] = collector
    return collector.play(model, run.trainer.plan_bank, run.trainer.cfg.inference, cfg, y_plus,
                          run.task.horizon, seed, shards)


def close_collector(run: Any) -> None:
    """Stop ``run``'s actors now. Dropping the run would too, but an OnlineRun sits in a
    reference cycle (its trainer's checkpoint hook), so that waits for Python's cycle collector
    while the actors hold their CPUs."""
    collector = _COLLECTORS.pop(run, None)
    if collector is not None:
        collector.close()
