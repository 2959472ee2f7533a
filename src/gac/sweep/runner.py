"""Running a sweep's trials: in parallel on Ray (local or an existing cluster), or one after
another in this process, with directories that outlive the driver.

Each trial lives in ``ROOT/SWEEP/TRIAL/``: ``trial.json`` (its definition), ``status.json``
(pending / running / done / failed, with the error or the result; written atomically), the
run's own files (checkpoint, metrics, plots) and ``log.txt``. Running a sweep again skips done
trials, and resumes the others -- interrupted (left ``running``) or failed -- from their
checkpoints. A failing trial records its error and traceback and never stops the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gac.sweep.spec import SpecError, SweepSpec, Trial, expand

STATUS, TRIAL, SWEEP = "status.json", "trial.json", "sweep.json"
Backend = Literal["auto", "ray", "local"]
OnDone = Callable[[str, Any, BaseException | None], None]


class SweepError(RuntimeError):
    """A sweep that cannot start (not a trial failure: those are recorded per trial)."""


# ---------------------------------------------------------------------------- status files
def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a killed writer never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(x: Any) -> Any:
    try:
        return float(x)  # numpy scalars
    except (TypeError, ValueError):
        return str(x)


def read_status(trial_dir: Path) -> dict[str, Any]:
    path = trial_dir / STATUS
    if not path.exists():
        return {"status": "pending"}
    return json.loads(path.read_text())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------- one trial
def run_trial(trial: dict[str, Any], trial_dir: str, threads: int = 1) -> dict[str, Any]:
    """Run (or resume) one trial in this process and return its final status.

    The same function runs in-process and inside a Ray task. An exception is recorded in
    ``status.json`` (and the traceback in ``error.txt``), not raised; a KeyboardInterrupt or a
    killed process leaves the status ``running``, which the next sweep resumes.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))  # one thread per CPU of the trial: no oversubscription
    try:
        return _run_trial(trial, Path(trial_dir))
    finally:
        torch.set_num_threads(before)  # in-process trials leave the caller's setting as it was


def _run_trial(trial: dict[str, Any], d: Path) -> dict[str, Any]:
    d.mkdir(parents=True, exist_ok=True)
    previous = read_status(d)
    if previous.get("status") == "done":
        return previous
    attempt = int(previous.get("attempts", 0)) + 1
    base = {"trial": trial["id"], "attempts": attempt, "host": socket.gethostname(),
            "pid": os.getpid(), "started": _now(),
            "resumed": (d / "checkpoint.pt").exists(),
            "wall_s_previous": float(previous.get("wall_s_total", 0.0))}
    write_json(d / STATUS, {**base, "status": "running"})
    t0 = time.time()
    try:
        if trial.get("error"):  # could not be prepared (e.g. its checkpoint is missing)
            raise SweepError(trial["error"])
        with open(d / "log.txt", "a") as logf, contextlib.redirect_stdout(logf), \
                contextlib.redirect_stderr(logf):
            print(f"=== {_now()} attempt {attempt} on {base['host']} (pid {base['pid']})"
                  + (", resuming from checkpoint.pt" if base["resumed"] else ""), flush=True)
            run = _run_train if trial["command"] == "train" else _run_finetune
            result = run(trial, d)
    except Exception as exc:  # noqa: BLE001 - every failure is the trial's, recorded for the report
        (d / "error.txt").write_text(traceback.format_exc())
        status = {**base, "status": "failed", "error": _error_text(exc)}
    else:
        status = {**base, "status": "done", "error": None, "result": result}
    wall = time.time() - t0
    status.update(finished=_now(), wall_s=wall, wall_s_total=base["wall_s_previous"] + wall)
    write_json(d / STATUS, status)
    return status


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip("'\"")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_train(trial: dict[str, Any], d: Path) -> dict[str, Any]:
    from gac.evaluation.plots import learning_curve
    from gac.runs import eval_callback, make_trainer

    ev = trial["eval"]
    trainer = make_trainer(trial["dataset_path"], d, task=trial["task"], seed=trial["seed"],
                           overrides=list(trial["overrides"]), resume=True, progress=False)
    if trainer.step:
        print(f"resumed at update {trainer.step} of {trainer.cfg.train.steps}", flush=True)
    on_eval = eval_callback(ev["during"], seed=trial["seed"]) if ev["during"] else None
    history = trainer.train(progress=False, on_eval=on_eval)
    learning_curve(history, d / "learning_curve.png", title=trial["id"])
    result = _final_eval(d, ev)
    curves = {"loss": [[h["step"], h["loss"]] for h in history if "loss" in h]}
    evals = [[h["step"], h["eval_score"]] for h in history if "eval_score" in h]
    if evals:
        curves["eval_score"] = evals
    last = history[-1] if history else {}
    return {**result, "steps": trainer.step, "loss": last.get("loss"), "curves": curves}


def _run_finetune(trial: dict[str, Any], d: Path) -> dict[str, Any]:
    from gac.runs import make_online, run_online

    online = make_online(trial["checkpoint_path"], d,
                         [f"train.seed={trial['seed']}", *trial["overrides"]], resume=True,
                         progress=False)
    records, _ = run_online(online, trial["id"], progress=False,
                            log=lambda msg: print(msg, flush=True))
    result = _final_eval(d, trial["eval"])
    return {**result, "offline_score": records[0]["score"], "online_score": records[-1]["score"],
            "gain": records[-1]["score"] - records[0]["score"],
            "env_steps": records[-1].get("env_steps", 0), "steps": online.trainer.step,
            "curves": {"score": [[r.get("env_steps", 0), r["score"]] for r in records]}}


def _final_eval(d: Path, ev: dict[str, Any]) -> dict[str, Any]:
    from gac.runs import evaluate_checkpoint

    res = evaluate_checkpoint(d / "checkpoint.pt", ev["episodes"], list(ev["seeds"]), ev["mode"],
                              ev["n_envs"], progress=False)
    s = res.summary()
    return {"score": s["score_mean"], "score_std_seeds": s["score_std_seeds"],
            "score_std_episodes": s["score_std_episodes"], "return": s["return_mean"],
            "predicted_return": s["predicted_return_mean"], "normalised": res.ref is not None,
            "eval_mode": res.mode, "eval_episodes": ev["episodes"], "eval_seeds": list(ev["seeds"])}


def _resolve_dataset(name: str, seed: int) -> str:
    """Find, or generate and cache, a task's dataset exactly as `gac train NAME --seed S` would
    (gac.data.datasets.resolve_dataset), and return the file it loaded."""
    from gac.data.datasets import resolve_dataset

    return str(resolve_dataset(name, seed=seed, progress=False).metadata["source"])


# ---------------------------------------------------------------------------- executors
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

    if ray.is_initialized():
        yield
        return
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
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


# ---------------------------------------------------------------------------- the sweep
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
                log(f"  dataset {key}: {_error_text(error)}")
            else:
                log(f"  dataset {key}: {path}")
            for job in jobs.values():
                if job.get("dataset_key") == key:
                    if error is None:
                        job["dataset_path"] = path
                    else:
                        job["error"] = f"dataset {key}: {_error_text(error)}"

        def trial_done(tid: str, status: dict | None, error: BaseException | None) -> None:
            if error is not None or status is None:  # the worker died: run_trial could not record it
                prior = read_status(dirs[tid])
                status = {**prior, "trial": tid, "status": "failed", "finished": _now(),
                          "error": _error_text(error) if error else "no status returned"}
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
                    execute(_resolve_dataset, list(datasets.items()), dataset_done, cpus=cpus,
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
