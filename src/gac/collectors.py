"""Collectors: where the episodes of online collection are played.

``OnlineRun.collect_group`` splits a group of episodes into shards (``split_group``,
``online.collect_shards``) and hands them to its collector. ``LocalCollector`` plays them one
after another in this process; ``RayCollector`` plays them in parallel on Ray actors (the
``ray`` extra). Each actor holds its own environments and a copy of the model; per group it
gets the current weights and plan bank (put once into Ray's object store, shared by all
actors). Both play a shard the same way -- ``rollout`` with the shard's batch, environment
seeds and plan generator -- so their episodes are bit-identical (same torch build, CPU).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Protocol

import torch

from gac.config import InferenceConfig, ModelConfig, OnlineConfig
from gac.inference import PlanBank, exploration_planner
from gac.model import GACModel
from gac.rollout import make_envs, rollout

Shard = tuple[int, int, int]  # (first episode of the group, episodes, of which explore)


def split_group(n: int, shards: int, n_explore: int) -> list[Shard]:
    """(first episode, episodes, explorers) of each shard of a group of ``n`` episodes whose
    first ``n_explore`` explore: contiguous shards whose sizes differ by at most one."""
    k = max(1, min(shards, n))
    bounds = [n * i // k for i in range(k + 1)]
    return [(a, b - a, min(max(n_explore - a, 0), b - a))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class Collector(Protocol):
    def collect(self, model: GACModel, bank: PlanBank, icfg: InferenceConfig, ocfg: OnlineConfig,
                y_plus: float, seed: int, shards: list[Shard]) -> list[dict[str, Any]]:
        """Every shard's ``rollout`` output (with ``episodes``), in shard order."""
        ...

    def close(self) -> None: ...


def play_shard(model: GACModel, envs: list[Any], horizon: int, bank: PlanBank,
               icfg: InferenceConfig, ocfg: OnlineConfig, y_plus: float, seed: int,
               shard: Shard) -> dict[str, Any]:
    """One shard: its episodes on the first ``size`` of ``envs``, recorded."""
    first, size, n_explore = shard
    planner = exploration_planner(model, icfg, ocfg, y_plus, n_explore, bank)
    # Collection re-plans as evaluation does (inference.replan_every): the data then come from
    # the policy that is evaluated, exploring episodes with their remaining optimistic target.
    return rollout(model, envs[:size], horizon, size, seed=seed + first, planner=planner,
                   record=True, replan_every=icfg.replan_every)


class LocalCollector:
    """Shards played one after another in this process, on ``n_envs`` environments made once."""

    def __init__(self, task: Any, n_envs: int):
        self.task = task
        self.envs = make_envs(task.make_env, n_envs)

    def collect(self, model: GACModel, bank: PlanBank, icfg: InferenceConfig, ocfg: OnlineConfig,
                y_plus: float, seed: int, shards: list[Shard]) -> list[dict[str, Any]]:
        return [play_shard(model, self.envs, self.task.horizon, bank, icfg, ocfg, y_plus, seed,
                           shard) for shard in shards]

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


class CollectorActor:
    """One Ray actor: environments of one task and a policy whose weights follow the learner."""

    def __init__(self, task: Any, model_cfg: ModelConfig, threads: int = 1):
        torch.set_num_threads(threads)
        self.task = task
        self.model = GACModel(model_cfg).eval()
        self.envs: list[Any] = []

    def play(self, policy: dict[str, Any], icfg: InferenceConfig, ocfg: OnlineConfig,
             y_plus: float, seed: int, shard: Shard) -> dict[str, Any]:
        size = shard[1]
        self.model.load_state_dict(policy["weights"])
        bank = PlanBank(*policy["plan_bank"])  # what the bank modes choose from
        if len(self.envs) < size:  # environments are made once and reused, as locally
            self.envs += make_envs(self.task.make_env, size - len(self.envs))
        return play_shard(self.model, self.envs, self.task.horizon, bank, icfg, ocfg, y_plus,
                          seed, shard)

    def ping(self) -> bool:
        return True


class RayStartError(RuntimeError):
    """Ray did not start (or its cluster did not answer) in time, with what to do about it."""


def init_ray(address: str | None = None, num_cpus: int | None = None,
             timeout: float | None = None) -> None:
    """``ray.init``: a local instance, or the cluster at ``address`` (or ``$RAY_ADDRESS``), within
    ``timeout`` seconds (default ``$GAC_RAY_TIMEOUT``, else 120); otherwise ``RayStartError``.

    A cluster address is probed first: Ray's own client waits a minute for an address where
    nothing answers, then ends the process."""
    import ray

    if timeout is None:
        timeout = float(os.environ.get("GAC_RAY_TIMEOUT", 120))
    target = address or os.environ.get("RAY_ADDRESS")
    where = f"the Ray cluster at {target}" if target else "a local Ray instance"
    if target and target != "auto" and "://" not in target:
        host, _, port = target.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), min(timeout, 10)).close()
        except (OSError, ValueError) as exc:
            raise RayStartError(f"no Ray cluster answers at {target} ({exc}); start one with "
                                f"`ray start --head`, check the address, or run without Ray "
                                f"(gac sweep --local; online.collector=local)") from None
    timed_out, lock, finished = threading.Event(), threading.Lock(), [False]

    def watchdog() -> None:  # a start-up that hangs (a busy machine, a stuck raylet) ends here
        time.sleep(timeout)
        with lock:
            if not finished[0]:
                timed_out.set()  # SIGINT wakes a blocking call too (interrupt_main would not)
                signal.pthread_kill(main, signal.SIGINT)

    # Ray starts in this thread (its processes die with the thread that started them); the
    # watchdog can only interrupt the main thread, so elsewhere there is no timeout.
    main = threading.main_thread().ident
    restore = None
    if threading.current_thread() is threading.main_thread():
        # A process started in the background by a non-interactive shell (`nohup gac sweep
        # ... &`) ignores SIGINT, and the watchdog could not interrupt it: Python's handler
        # is put back while Ray starts.
        restore = signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Thread(target=watchdog, name="gac-ray-watchdog", daemon=True).start()
    try:
        try:
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        finally:
            with lock:
                finished[0] = True
            if restore is not None:
                signal.signal(signal.SIGINT, restore)
    except KeyboardInterrupt:
        if not timed_out.is_set():
            raise
        if ray.is_initialized():  # it came up as time ran out
            ray.shutdown()
        raise RayStartError(f"{where} did not start within {timeout:g} s; raise GAC_RAY_TIMEOUT "
                            f"if the machine is busy, or run without Ray (gac sweep --local; "
                            f"online.collector=local)") from None
    except Exception as exc:
        raise RayStartError(f"{where} could not start: {type(exc).__name__}: {exc}") from exc


def ensure_ray(address: str | None = None) -> None:
    """Start (or join, with ``address`` or ``$RAY_ADDRESS``) Ray unless this process -- a
    driver or a sweep trial running inside Ray -- is already connected."""
    import ray

    if not ray.is_initialized():
        init_ray(address)


class RayCollector:
    """``actors`` Ray actors playing shards of episodes of ``task`` with one shared policy;
    shard i goes to actor i mod A. The actors start at the first ``collect`` (or ``ready``)."""

    def __init__(self, task: Any, model_cfg: ModelConfig, actors: int = 2, threads: int = 1,
                 address: str | None = None):
        if actors < 1:
            raise ValueError(f"online.collector_actors={actors}: need at least one actor")
        self.task, self.model_cfg = task, model_cfg
        self.n_actors, self.threads, self.address = actors, threads, address
        self.actors: list[Any] = []

    def _start(self) -> None:
        import ray

        if self.actors:
            return
        ensure_ray(self.address)
        # Inside a Ray task (a sweep trial) the trial's CPUs already cover its actors: asking
        # for more could deadlock a cluster full of trials that each wait for their actors.
        nested = ray.get_runtime_context().get_task_id() is not None
        remote = ray.remote(num_cpus=0 if nested else self.threads)(CollectorActor)
        self.actors = [remote.remote(self.task, self.model_cfg, self.threads)
                       for _ in range(self.n_actors)]

    def collect(self, model: GACModel, bank: PlanBank, icfg: InferenceConfig, ocfg: OnlineConfig,
                y_plus: float, seed: int, shards: list[Shard]) -> list[dict[str, Any]]:
        import ray

        if next(model.parameters()).device.type != "cpu":
            raise ValueError("online.collector=ray plays on CPU actors; it needs train.device=cpu "
                             "(identical episodes need the same device as local collection)")
        self._start()
        policy = ray.put({"weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                          "plan_bank": bank.arrays()})
        refs = [self.actors[i % len(self.actors)].play.remote(policy, icfg, ocfg, y_plus, seed,
                                                               shard)
                for i, shard in enumerate(shards)]
        return ray.get(refs)

    def ready(self) -> None:
        """Block until every actor has started (benchmarks time collection without start-up)."""
        import ray

        self._start()
        ray.get([a.ping.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the actors now (they hold their CPUs until then)."""
        if not self.actors:
            return
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []


def make_collector(task: Any, cfg: OnlineConfig, model_cfg: ModelConfig) -> Collector:
    """The collector ``cfg.collector`` names."""
    if cfg.collector == "local":
        return LocalCollector(task, cfg.n_envs)
    if cfg.collector == "ray":
        return RayCollector(task, model_cfg, cfg.collector_actors)
    raise ValueError(f"online.collector={cfg.collector!r}: expected local or ray")
