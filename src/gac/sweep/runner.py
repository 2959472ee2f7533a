"""Running a sweep: its trials in parallel on Ray (local or an existing cluster), or one after
another in this process (``gac.sweep.executor``), each in its own directory
(``gac.sweep.trial``). Running a sweep again skips done trials, and resumes the others --
interrupted (left ``running``) or failed -- from their checkpoints; a failing trial never stops
the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gac.sweep.executor import ray_available, ray_session, run_local, run_ray
from gac.sweep.spec import SpecError, SweepSpec, Trial, expand
from gac.sweep.trial import (
    STATUS,
    SWEEP,
    TRIAL,
    SweepError,
    error_text,
    find_dataset,
    now,
    read_status,
    run_trial,
    write_json,
)

Backend = Literal["auto", "ray", "local"]


@dataclass
class SweepResult:
    sweep_dir: Path
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial id -> status
    skipped: list[str] = field(default_factory=list)  # done before this run
    backend: str = "local"

    @property
    def failed(self) -> list[str]:
        return [k for k, s in self.statuses.items() if s.get("status") == "failed"]

    @property
    def done(self) -> list[str]:
        return [k for k, s in self.statuses.items() if s.get("status") == "done"]


def prepare(spec: SweepSpec, root: str | Path) -> list[tuple[Trial, Path]]:
    """Expand the sweep and create its trial directories; a directory whose trial was defined
    differently (the spec changed under the same name) is an error, never silently reused."""
    sweep_dir = Path(root).resolve() / spec.name
    out = [(trial, sweep_dir / trial.id) for trial in expand(spec)]
    for trial, d in out:  # every check before the first write: a refused sweep changes nothing
        if (d / TRIAL).exists():
            old, new = json.loads((d / TRIAL).read_text()), trial.to_dict()
            changed = sorted(k for k in new if old.get(k) != new[k])
            if changed:
                raise SpecError(
                    f"{d}: this trial already ran with a different {', '.join(changed)} "
                    f"(was {[old.get(k) for k in changed]}, now {[new[k] for k in changed]});"
                    f" give the sweep another name, or delete that directory to rerun it")
    for trial, d in out:
        if not (d / TRIAL).exists():
            d.mkdir(parents=True, exist_ok=True)
            write_json(d / TRIAL, trial.to_dict())
            write_json(d / STATUS, {"trial": trial.id, "status": "pending"})
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json(sweep_dir / SWEEP, {"name": spec.name, "command": spec.command,
                                   "source": spec.source, "tasks": spec.tasks,
                                   "seeds": spec.seeds, "grid": spec.grid,
                                   "variants": spec.variants, "set": spec.set, "eval": spec.eval,
                                   "resources": spec.resources,
                                   "trials": [t.id for t, _ in out]})
    return out


def resolve_inputs(trial: Trial, root: Path) -> tuple[dict[str, Any], tuple[str, int] | None]:
    """The job a worker runs (absolute paths: workers may run elsewhere), and the task dataset
    ``(name, seed)`` to resolve first, once for all trials that share it: generating it inside
    concurrent trials would race on the cache file.

    A trial that cannot be resolved carries ``error``; it fails when run, like any other."""
    from gac.data.datasets import MINARI_PREFIX

    job = trial.to_dict()
    dataset = None
    if trial.command == "train":
        name = trial.dataset or trial.task
        path = Path(name).expanduser()
        if name.startswith(MINARI_PREFIX):
            job["dataset_path"] = name
        elif path.suffix in (".hdf5", ".h5") or path.exists():
            job["dataset_path"] = str(path.resolve())
            if not path.exists():
                job["error"] = f"dataset {path} does not exist"
        else:  # a task name: its dataset, seeded by the trial seed as in `gac train TASK --seed S`
            dataset = (name, trial.seed)
    else:
        try:
            job["checkpoint_path"] = str(_checkpoint(trial, root))
        except SweepError as exc:
            job["error"] = str(exc)
    return job, dataset


def _checkpoint(trial: Trial, root: Path) -> Path:
    src = trial.checkpoint_from
    if isinstance(src, str):
        path = Path(src).expanduser().resolve()
        if not path.exists():
            raise SweepError(f"checkpoint {path} does not exist")
        return path
    sweep_dir = root / src["sweep"]
    if not sweep_dir.is_dir():
        raise SweepError(f"checkpoint_from: no sweep {src['sweep']!r} under {root}; run it first")
    matches = []
    for p in sorted(sweep_dir.glob(f"*/{TRIAL}")):
        t = json.loads(p.read_text())
        params = {k: v for k, v in t["params"]}
        if t["task"] == trial.task and t["seed"] == trial.seed and t["command"] == "train" and \
                all(params.get(k) == v for k, v in src["match"].items()):
            matches.append(p.parent)
    if len(matches) != 1:
        what = "no trial" if not matches else f"{len(matches)} trials ({[m.name for m in matches]})"
        raise SweepError(f"checkpoint_from: {what} of sweep {src['sweep']!r} with task "
                         f"{trial.task}, seed {trial.seed}"
                         + (f" and {src['match']}" if src["match"] else "")
                         + ("; narrow it with match: {SECTION.FIELD: value}" if matches else ""))
    status = read_status(matches[0])
    if status.get("status") != "done":
        raise SweepError(f"checkpoint_from: offline trial {matches[0]} is {status.get('status')}, "
                         f"not done; finish that sweep first")
    return matches[0] / "checkpoint.pt"


@contextlib.contextmanager
def _lock(sweep_dir: Path) -> Iterator[None]:
    """One driver per sweep at a time (two would run the same trials into the same folders)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with open(sweep_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepError(f"another `gac sweep` is running {sweep_dir}") from None
        f.write(str(os.getpid()))
        f.flush()
        yield


def run_sweep(spec: SweepSpec, root: str | Path = "runs/sweeps", backend: Backend = "auto",
              address: str | None = None, max_parallel: int | None = None,
              num_cpus: int | None = None, retry_failed: bool = True,
              log: Callable[[str], None] = print) -> SweepResult:
    """Run every trial of ``spec`` that is not done yet; returns every trial's status.

    ``backend``: ``ray`` (a local Ray instance, or the cluster at ``address``), ``local`` (one
    trial after another in this process) or ``auto`` (Ray when it is installed).
    """
    if backend == "auto":
        backend = "ray" if ray_available() or address else "local"
    if backend == "ray" and not ray_available():
        raise SweepError("Ray is not installed: pip install 'gac[ray]', or run with --local")
    root = Path(root).resolve()
    sweep_dir = root / spec.name
    result = SweepResult(sweep_dir, backend=backend)
    with _lock(sweep_dir):
        trials = prepare(spec, root)
        todo: list[tuple[Trial, Path]] = []
        for trial, d in trials:
            status = read_status(d)
            if status.get("status") == "done" or (status.get("status") == "failed" and not retry_failed):
                result.statuses[trial.id] = status
                result.skipped.append(trial.id)
            else:
                todo.append((trial, d))
        log(f"sweep {spec.name}: {len(trials)} trials, {len(result.skipped)} already "
            f"{'done' if retry_failed else 'done or failed'}, {len(todo)} to run "
            f"({'Ray' + (' at ' + address if address else ', local') if backend == 'ray' else 'in-process'}"
            f"); trial folders under {sweep_dir}")
        if not todo:
            return result
        jobs: dict[str, dict[str, Any]] = {}
        datasets: dict[str, tuple[str, int]] = {}  # "name@seed" -> (name, seed)
        for trial, _ in todo:
            job, dataset = resolve_inputs(trial, root)
            jobs[trial.id] = job
            if dataset:
                job["dataset_key"] = f"{dataset[0]}@{dataset[1]}"
                datasets.setdefault(job["dataset_key"], dataset)
        cpus, gpus = spec.resources["cpus"], spec.resources["gpus"]
        threads = max(1, int(cpus))
        dirs = {t.id: d for t, d in todo}
        started = time.time()
        finished = [0]

        def dataset_done(key: str, path: str | None, error: BaseException | None) -> None:
            if error is not None:
                log(f"  dataset {key}: {error_text(error)}")
            else:
                log(f"  dataset {key}: {path}")
            for job in jobs.values():
                if job.get("dataset_key") == key:
                    if error is None:
                        job["dataset_path"] = path
                    else:
                        job["error"] = f"dataset {key}: {error_text(error)}"

        def trial_done(tid: str, status: dict | None, error: BaseException | None) -> None:
            if error is not None or status is None:  # the worker died: run_trial could not record it
                prior = read_status(dirs[tid])
                status = {**prior, "trial": tid, "status": "failed", "finished": now(),
                          "error": error_text(error) if error else "no status returned"}
                write_json(dirs[tid] / STATUS, status)
            result.statuses[tid] = status
            finished[0] += 1
            line = f"  [{finished[0]}/{len(todo)}] {status['status']:<6} {tid}"
            if status["status"] == "done":
                line += f"  score {status['result']['score']:.1f}"
            else:
                line += f"  {status.get('error')}"
            log(line + f"  ({status.get('wall_s', float('nan')):.1f} s)")

        execute = run_ray if backend == "ray" else run_local
        session = ray_session(address, num_cpus) if backend == "ray" else contextlib.nullcontext()
        if backend == "ray" and address:
            log(f"  note: workers write to {sweep_dir}; on a multi-node cluster it must be a "
                f"shared filesystem")
        try:
            with session:
                if datasets:
                    log(f"  finding {len(datasets)} task dataset(s) first (generated and cached "
                        f"where missing)")
                    execute(find_dataset, list(datasets.items()), dataset_done, cpus=cpus,
                            gpus=0.0, max_parallel=max_parallel)
                execute(run_trial, [(tid, (jobs[tid], str(dirs[tid]), threads)) for tid in jobs],
                        trial_done, cpus=cpus, gpus=gpus, max_parallel=max_parallel)
        except KeyboardInterrupt:
            log(f"sweep {spec.name}: interrupted with {len(todo) - finished[0]} trial(s) not "
                f"finished; run it again to resume them from their checkpoints")
            raise
        log(f"sweep {spec.name}: {len(result.done)} done, {len(result.failed)} failed, "
            f"{time.time() - started:.1f} s")
    return result
