"""Whole runs: train a model on a task or dataset, load a trained policy, evaluate it.

The CLI and the benchmarks call these; they wire data, model, training and evaluation together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from gac.atomic import write_text
from gac.collectors import make_collector
from gac.config import InferenceConfig, RunConfig, apply_overrides, choices, preset
from gac.data.datasets import resolve_dataset
from gac.data.segments import resegment
from gac.data.store import TrajectoryStore
from gac.evaluation.evaluate import EvalResult, evaluate
from gac.evaluation.report import online_table
from gac.inference import PlanBank, get_mode
from gac.model import GACModel
from gac.tasks import check_dims, get_task
from gac.train.checkpoint import CheckpointError, check_finite_weights, load_checkpoint
from gac.train.offline import Trainer, write_config
from gac.train.online import OnlineRun


def load_data(dataset: str, task: str | None = None, seed: int = 0, progress: bool = True
              ) -> tuple[TrajectoryStore, str]:
    """The store for a task name or an HDF5 path, and the task it belongs to. A dataset that
    does not fit the task's env fails here, before any training."""
    store = resolve_dataset(dataset, seed=seed, progress=progress, task=task)
    task_name = task or store.metadata.get("task") or dataset
    found = get_task(task_name)  # a clear error for an unknown task
    check_dims(store, found, where=str(store.metadata.get("source", dataset)))
    return store, found.name


def reference_returns(metadata: dict[str, Any], task: str | None = None
                      ) -> tuple[float, float] | None:
    """(R_random, R_expert): the dataset's own, else the task's D4RL references (for a D4RL
    file whose metadata carries none), else None (scores are then raw returns)."""
    if "ref_min_score" in metadata and "ref_max_score" in metadata:
        return float(metadata["ref_min_score"]), float(metadata["ref_max_score"])
    d4rl = getattr(get_task(task), "d4rl_references", None) if task else None
    return d4rl() if d4rl else None


def make_trainer(dataset: str, run_dir: str | Path, task: str | None = None, seed: int = 0,
                 overrides: list[str] | None = None, resume: bool = False,
                 progress: bool = True) -> Trainer:
    store, task_name = load_data(dataset, task, seed=seed, progress=progress)
    cfg = apply_overrides(preset(task_name), [f"train.seed={seed}", *(overrides or [])])
    get_mode(cfg.inference.mode)  # fail now, not at the first evaluation
    store = resegment(store, cfg.data.segments, get_task(task_name).horizon)
    run_dir = Path(run_dir)
    ckpt = checkpoint_path(run_dir, resume)
    scale = cfg.train.return_scale or get_task(task_name).return_scale
    trainer = Trainer(cfg, store, run_dir, return_scale=scale)
    if resume and ckpt.exists():
        trainer.load(ckpt)
    write_config(trainer.cfg, run_dir)
    return trainer


def eval_callback(episodes: int, seed: int = 0, n_envs: int = 16):
    """A ``Trainer.train`` hook logging the exploitation score during training."""

    def on_eval(trainer: Trainer) -> dict[str, float]:
        task = get_task(trainer.cfg.task)
        result = evaluate(trainer.acting_model, task, episodes, [seed], trainer.cfg.inference,
                          reference_returns(trainer.store.metadata, trainer.cfg.task), n_envs=n_envs,
                          bank=trainer.plan_bank)
        s = result.summary()
        return {"eval_score": s["score_mean"], "eval_return": s["return_mean"]}

    return on_eval


class Policy(NamedTuple):
    """A trained policy as a checkpoint holds it."""

    model: GACModel
    cfg: RunConfig
    meta: dict[str, Any]  # dataset metadata (references, task), step, history
    bank: PlanBank | None  # the training episodes' plans (None: an older checkpoint)


def load_policy(path: str | Path, device: str = "cpu", weights: str | None = None) -> Policy:
    """Model, config, dataset metadata and plan bank from a checkpoint. ``weights``: which
    weights play (``inference.weights``; None: the checkpoint's setting)."""
    return policy_from_state(load_checkpoint(path), path, device, weights)


def saved_config(state: dict[str, Any], path: str | Path) -> RunConfig:
    """The config a checkpoint already read was trained with (``path`` names it in errors)."""
    try:
        return RunConfig.from_dict(state["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete or damaged checkpoint ({exc!r})") from exc


def policy_from_state(state: dict[str, Any], path: str | Path, device: str = "cpu",
                      weights: str | None = None) -> Policy:
    """``load_policy`` for a checkpoint already read (``path`` names it in errors)."""
    allowed = choices(InferenceConfig, "weights")
    if weights is not None and weights not in allowed:
        raise ValueError(f"weights={weights!r}: expected one of {', '.join(allowed)}")
    cfg = saved_config(state, path)
    try:
        model = GACModel(cfg.model)
        weights = weights or cfg.inference.weights
        key = "averaged_model" if weights == "averaged" and "averaged_model" in state else "model"
        check_finite_weights(state[key], path)
        model.load_state_dict(state[key])
        bank = None
        if "episode_returns" in state:  # older checkpoints lack them (no elite inference)
            bank = PlanBank(state["chains"]["z"], state["episode_returns"],
                            state.get("episode_first_obs"), state.get("episode_last_obs"),
                            state.get("episode_lengths"))  # None: written before they were
            if state.get("plan_bank_size") is not None:  # online.plan_bank=offline
                bank = bank.head(state["plan_bank_size"])
    except CheckpointError:
        raise
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the saved model config ({exc})") from exc
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: incomplete or damaged checkpoint ({exc!r})") from exc
    model.to(device).eval()
    meta = dict(state.get("metadata", {}))
    meta["step"] = state.get("step")
    meta["history"] = state.get("history", [])
    return Policy(model, cfg, meta, bank)


def evaluate_checkpoint(path: str | Path, episodes: int = 50, seeds: list[int] | None = None,
                        mode: str | None = None, n_envs: int = 16,
                        inference_overrides: list[str] | None = None,
                        progress: bool = True, threads: int | None = None) -> EvalResult:
    """``episodes`` per seed of the checkpoint's policy. ``threads``: torch threads, None: one,
    as in training (config.py, ``train.threads``), so an evaluation repeats to the last digit."""
    torch.set_num_threads(threads or 1)
    state = load_checkpoint(path)
    if mode:
        inference_overrides = [f"inference.mode={mode}", *(inference_overrides or [])]
    cfg = apply_overrides(saved_config(state, path), inference_overrides or [])
    model, _, meta, bank = policy_from_state(state, path, weights=cfg.inference.weights)
    task = get_task(cfg.task)
    icfg: InferenceConfig = cfg.inference
    get_mode(icfg.mode)  # an unknown mode fails before any environment is made
    target = icfg.target_return
    if icfg.mode == "guided" and target is None:
        target = float(meta.get("return_max", np.nan))
        if np.isnan(target):
            raise ValueError("guided inference needs inference.target_return (raw units)")
    torch.manual_seed(0)
    return evaluate(model, task, episodes, seeds or [0, 1, 2], icfg, reference_returns(meta, cfg.task),
                    n_envs=n_envs, target_return=target, progress=progress, bank=bank)


def checkpoint_path(run_dir: Path, resume: bool) -> Path:
    """``run_dir``'s checkpoint; a directory that already holds a run is refused unless the
    run is to be resumed."""
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or "
                              f"choose another --run-dir")
    return ckpt


def make_online(checkpoint: str | Path, run_dir: str | Path, overrides: list[str] | None = None,
                resume: bool = False, progress: bool = True) -> OnlineRun:
    """An offline-to-online run continuing the offline model in ``checkpoint``."""
    state = load_checkpoint(checkpoint)
    cfg = apply_overrides(RunConfig.from_dict(state["config"]), overrides or [])
    get_mode(cfg.inference.mode)
    meta = state.get("metadata", {})
    source = meta.get("source")
    if not source or not Path(source).exists():
        raise CheckpointError(f"{checkpoint}: its dataset {source!r} is not available; the "
                              f"online stages keep training on the offline data")
    store, task_name = load_data(source, cfg.task, progress=progress)
    store = resegment(store, cfg.data.segments, get_task(task_name).horizon)
    run_dir = Path(run_dir)
    ckpt = checkpoint_path(run_dir, resume)
    trainer = Trainer(cfg, store, run_dir, return_scale=1.0)  # scale comes with the weights
    trainer.load(checkpoint, resumable=None)  # a new run from the offline weights
    task = get_task(task_name)
    collector = make_collector(task, cfg.online, trainer.cfg.model)
    online = OnlineRun(trainer, task, run_dir, reference_returns(meta, task_name), collector)
    if resume and ckpt.exists():
        online.load(ckpt)
    write_config(cfg, run_dir)
    return online


def run_online(online: OnlineRun, title: str, progress: bool = True,
               log: Callable[[str], None] = print) -> tuple[list[dict[str, float]], str]:
    """Run (or resume) the online stages, then release the collector and write the report
    (``report.md``, the stage table under ``title``) and ``online.png`` in the run directory.
    Returns the stage records and the table."""
    from gac.evaluation.plots import online_curves

    try:
        records = online.run(progress=progress, log=log)
    finally:
        online.close()
    store, first, by_stage = online.trainer.store, online.n_offline, []
    for r in records[1:]:  # the returns collected in each stage
        n = int(r["collected_episodes"])
        by_stage.append(store.returns[first:first + n])
        first += n
    table = online_table(records)
    write_text(online.run_dir / "report.md", f"## {title}: offline-to-online\n\n{table}\n")
    online_curves(records, by_stage, online.run_dir / "online.png", title=title)
    return records, table
