"""One trial of a sweep, run (or resumed) in this process or inside a Ray task, in a directory
that outlives the driver.

Each trial lives in ``ROOT/SWEEP/TRIAL/``: ``trial.json`` (its definition), ``status.json``
(pending / running / done / failed, with the error or the result; written atomically), the
run's own files (checkpoint, metrics, plots) and ``log.txt``. A failing trial records its error
and traceback; it never raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from gac.atomic import write_text

STATUS, TRIAL, SWEEP = "status.json", "trial.json", "sweep.json"


class SweepError(RuntimeError):
    """A sweep that cannot start (not a trial failure: those are recorded per trial)."""



# ---------------------------------------------------------------------------- status files
def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (``gac.atomic``): a killed writer never leaves half a file."""
    write_text(path, json.dumps(data, indent=2, default=_jsonable))


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


def now() -> str:
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
            "pid": os.getpid(), "started": now(),
            "resumed": (d / "checkpoint.pt").exists(),
            "wall_s_previous": float(previous.get("wall_s_total", 0.0))}
    write_json(d / STATUS, {**base, "status": "running"})
    t0 = time.time()
    try:
        if trial.get("error"):  # could not be prepared (e.g. its checkpoint is missing)
            raise SweepError(trial["error"])
        with open(d / "log.txt", "a") as logf, contextlib.redirect_stdout(logf), \
                contextlib.redirect_stderr(logf):
            print(f"=== {now()} attempt {attempt} on {base['host']} (pid {base['pid']})"
                  + (", resuming from checkpoint.pt" if base["resumed"] else ""), flush=True)
            run = _run_train if trial["command"] == "train" else _run_finetune
            result = run(trial, d)
    except Exception as exc:  # noqa: BLE001 - every failure is the trial's, recorded for the report
        (d / "error.txt").write_text(traceback.format_exc())
        status = {**base, "status": "failed", "error": error_text(exc)}
    else:
        status = {**base, "status": "done", "error": None, "result": result}
    wall = time.time() - t0
    status.update(finished=now(), wall_s=wall, wall_s_total=base["wall_s_previous"] + wall)
    write_json(d / STATUS, status)
    return status


def error_text(exc: BaseException) -> str:
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


def find_dataset(name: str, seed: int) -> str:
    """Find, or generate and cache, a task's dataset exactly as `gac train NAME --seed S` would
    (gac.data.datasets.resolve_dataset), and return the file it loaded."""
    from gac.data.datasets import resolve_dataset

    return str(resolve_dataset(name, seed=seed, progress=False).metadata["source"])
