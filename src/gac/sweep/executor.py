"""Executors: how a list of jobs runs -- one after another in this process, or as Ray tasks --
each job's result or error reported to a callback as it finishes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

OnDone = Callable[[str, Any, BaseException | None], None]


def run_local(fn: Callable[..., Any], jobs: list[tuple[str, tuple]], on_done: OnDone,
              **_: Any) -> None:
    """One job after another in this process."""
    for key, args in jobs:
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported per job
            on_done(key, None, exc)
        else:
            on_done(key, value, None)


def run_ray(fn: Callable[..., Any], jobs: list[tuple[str, tuple]], on_done: OnDone,
            cpus: float = 1.0, gpus: float = 0.0, max_parallel: int | None = None) -> None:
    """One Ray task per job, at most ``max_parallel`` in flight (Ray also queues by resources).
    A task that dies (worker crash, out of memory) is reported as that job's error."""
    import ray

    remote = ray.remote(fn).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    queue = list(jobs)
    limit = max_parallel or len(queue) or 1
    pending: dict[Any, str] = {}
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                key, args = queue.pop(0)
                pending[remote.remote(*args)] = key
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                key = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                    on_done(key, None, exc)
                else:
                    on_done(key, value, None)
    finally:
        for ref in pending:  # interrupted driver: stop the trials (their statuses say running)
            ray.cancel(ref, force=True)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray as the caller left it, or a fresh one (local, or ``address``'s cluster) shut down
    at the end."""
    import ray

    from gac.collectors import RayStartError, init_ray
    from gac.sweep.trial import SweepError

    if ray.is_initialized():
        yield
        return
    try:
        init_ray(address, num_cpus=None if address else num_cpus)
    except RayStartError as exc:
        raise SweepError(str(exc)) from exc
    try:
        yield
    finally:
        ray.shutdown()


def ray_available() -> bool:
    try:
        import ray  # noqa: F401 - a broken install counts as no Ray
    except ImportError:
        return False
    return True
