"""Sweep files: what to run, expanded into trials with stable, readable ids.

A sweep file (YAML; JSON is YAML too)::

    name: umaze-lr                 # default: the file's name; trials go to ROOT/NAME/TRIAL/
    command: train                 # or finetune (then checkpoint_from is required)
    tasks: [pointmaze-umaze-goal]
    seeds: [0, 1, 2]
    dataset: null                  # default: the task's dataset (as `gac train TASK --seed S`);
                                   # or a path / minari:ID, {task} and {seed} filled in;
                                   # or a mapping task -> dataset
    grid:                          # cartesian product of override values
      train.lr: [1e-3, 3e-4]
    variants:                      # optional named override sets, crossed with the grid
      auto: []
      dy5: [online.delta_y=5]
    set: [train.steps=2000]        # fixed overrides (a list, or a mapping key: value)
    eval: {episodes: 50, seeds: [0], mode: null, n_envs: 16, during: 0}
    resources: {cpus: 1, gpus: 0}  # per trial (Ray)
    checkpoint_from: {sweep: umaze-seeds}   # finetune: the trial of that sweep with the same
                                   # task and seed (add `match: {train.lr: 1e-3}` where that
                                   # sweep has a grid); or a path, {task} and {seed} filled in

A trial id names its task, variant, grid values and seed, e.g.
``pointmaze-umaze-goal__dy5__train.lr=1e-3__s0``; fixed ``set`` overrides are not part of it (the
runner refuses to reuse a trial directory whose definition changed).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gac.config import apply_overrides, preset
from gac.inference import get_mode

COMMANDS = ("train", "finetune")
KEYS = ("name", "command", "tasks", "seeds", "dataset", "grid", "variants", "set", "eval",
        "resources", "checkpoint_from")
EVAL_KEYS = {"episodes": 50, "seeds": [0], "mode": None, "n_envs": 16, "during": 0}
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")


class SpecError(ValueError):
    """A sweep file that cannot be run, with the reason."""


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: everything needed to run it, picklable and JSON-able."""

    id: str
    command: str
    task: str
    seed: int
    params: tuple[tuple[str, str], ...]  # (variant?, grid values) that tell settings apart
    overrides: tuple[str, ...]  # set, then variant, then grid: later ones win
    dataset: str | None = None  # train: as written in the spec (resolved by the runner)
    checkpoint_from: Any = None  # finetune: a path or {"sweep": NAME, "match": {...}}
    eval: dict[str, Any] = field(default_factory=dict)

    @property
    def setting(self) -> str:
        """The label of this trial's setting (everything but the seed and the task)."""
        return ", ".join(f"{k}={v}" if k != "variant" else v for k, v in self.params) or "default"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "task": self.task, "seed": self.seed,
                "params": [list(p) for p in self.params], "overrides": list(self.overrides),
                "dataset": self.dataset, "checkpoint_from": self.checkpoint_from,
                "eval": dict(self.eval)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        return cls(id=d["id"], command=d["command"], task=d["task"], seed=int(d["seed"]),
                   params=tuple((str(k), str(v)) for k, v in d["params"]),
                   overrides=tuple(d["overrides"]), dataset=d.get("dataset"),
                   checkpoint_from=d.get("checkpoint_from"), eval=dict(d.get("eval", {})))


@dataclass
class SweepSpec:
    name: str
    command: str = "train"
    tasks: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    dataset: str | dict[str, str] | None = None
    grid: dict[str, list[str]] = field(default_factory=dict)
    variants: dict[str, list[str]] = field(default_factory=dict)
    set: list[str] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=lambda: dict(EVAL_KEYS))
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1.0, "gpus": 0.0})
    checkpoint_from: str | dict[str, Any] | None = None
    source: str = "<spec>"  # where it was read from, for error messages


# ---------------------------------------------------------------------------- loading
def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; every problem is a ``SpecError`` naming the file and key."""
    path = Path(path)
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is a dependency
        raise SpecError("reading sweep files needs pyyaml: pip install pyyaml") from exc
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the sweep file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    return parse_spec(data, source=str(path), default_name=path.stem)


def parse_spec(data: Any, source: str = "<spec>", default_name: str = "sweep") -> SweepSpec:
    """A checked ``SweepSpec`` from the parsed mapping (see the module docstring)."""
    def fail(msg: str) -> SpecError:
        return SpecError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail("expected a mapping of keys (name, command, tasks, seeds, ...)")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise fail(f"unknown key(s) {unknown}; known: {list(KEYS)}")
    name = str(data.get("name") or default_name)
    if _SAFE.sub("_", name) != name or name.startswith("."):
        raise fail(f"name {name!r}: use letters, digits and . _ + = - only (it names a folder)")
    command = data.get("command", "train")
    if command not in COMMANDS:
        raise fail(f"command {command!r}: expected one of {list(COMMANDS)}")

    tasks = data.get("tasks")
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise fail("tasks: expected a non-empty list of task names, e.g. [pointmaze-umaze-goal]")
    from gac.tasks import get_task

    for t in tasks:
        try:
            get_task(t)
        except KeyError as exc:
            raise fail(f"tasks: {exc.args[0]}") from None

    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise fail(f"seeds: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise fail(f"seeds: {seeds} repeats a seed")

    dataset = data.get("dataset")
    if dataset is not None:
        if command == "finetune":
            raise fail("dataset: a finetune trial keeps training on its checkpoint's dataset")
        if isinstance(dataset, dict):
            missing = [t for t in tasks if t not in dataset]
            if missing:
                raise fail(f"dataset: no entry for task(s) {missing}")
            dataset = {str(k): str(v) for k, v in dataset.items()}
        elif not isinstance(dataset, str):
            raise fail("dataset: expected a path or task name, or a mapping task -> dataset")

    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise fail("grid: expected a mapping SECTION.FIELD -> list of values")
    grid_values: dict[str, list[str]] = {}
    for key, values in grid.items():
        _check_key(str(key), fail, "grid")
        if not isinstance(values, list) or not values:
            raise fail(f"grid.{key}: expected a non-empty list of values, e.g. [1e-3, 3e-4]")
        strs = [_value_str(v) for v in values]
        if len(set(strs)) != len(strs):
            raise fail(f"grid.{key}: {strs} repeats a value")
        grid_values[str(key)] = strs

    variants = data.get("variants") or {}
    if not isinstance(variants, dict):
        raise fail("variants: expected a mapping NAME -> list of overrides")
    variant_sets = {str(k): _override_list(v, fail, f"variants.{k}") for k, v in variants.items()}
    for vname in variant_sets:
        if _SAFE.sub("_", vname) != vname:
            raise fail(f"variants: name {vname!r}: use letters, digits and . _ + = - only")

    fixed = _override_list(data.get("set") or [], fail, "set")

    ev = data.get("eval") or {}
    if not isinstance(ev, dict) or set(ev) - set(EVAL_KEYS):
        raise fail(f"eval: expected a mapping with keys among {list(EVAL_KEYS)}")
    ev = {**EVAL_KEYS, **ev}
    if not isinstance(ev["episodes"], int) or ev["episodes"] < 1:
        raise fail("eval.episodes: expected a positive integer")
    if isinstance(ev["seeds"], int):
        ev["seeds"] = [ev["seeds"]]
    if not isinstance(ev["seeds"], list) or not ev["seeds"] or \
            not all(isinstance(s, int) for s in ev["seeds"]):
        raise fail("eval.seeds: expected a non-empty list of integers")
    if ev["mode"] is not None:
        try:
            get_mode(ev["mode"])
        except ValueError as exc:
            raise fail(f"eval.mode: {exc} or null") from None
    for k in ("n_envs", "during"):
        if not isinstance(ev[k], int) or ev[k] < 0 or (k == "n_envs" and ev[k] < 1):
            raise fail(f"eval.{k}: expected a {'positive' if k == 'n_envs' else 'non-negative'} integer")

    res = data.get("resources") or {}
    if not isinstance(res, dict) or set(res) - {"cpus", "gpus"}:
        raise fail("resources: expected a mapping with keys cpus and/or gpus")
    resources = {"cpus": res.get("cpus", 1), "gpus": res.get("gpus", 0)}
    for k, v in resources.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0 or (k == "cpus" and v == 0):
            raise fail(f"resources.{k}: expected a {'positive' if k == 'cpus' else 'non-negative'} number")
        resources[k] = float(v)

    ckpt = data.get("checkpoint_from")
    if command == "train" and ckpt is not None:
        raise fail("checkpoint_from: only for command: finetune")
    if command == "finetune":
        if ckpt is None:
            raise fail("command finetune needs checkpoint_from: a path (with {task}, {seed}) "
                       "or {sweep: NAME} (the offline sweep's trial with the same task and seed)")
        if isinstance(ckpt, dict):
            if "sweep" not in ckpt or set(ckpt) - {"sweep", "match"}:
                raise fail("checkpoint_from: expected {sweep: NAME} with an optional match mapping")
            match = ckpt.get("match") or {}
            if not isinstance(match, dict):
                raise fail("checkpoint_from.match: expected a mapping SECTION.FIELD -> value")
            ckpt = {"sweep": str(ckpt["sweep"]),
                    "match": {str(k): _value_str(v) for k, v in match.items()}}
        elif not isinstance(ckpt, str):
            raise fail("checkpoint_from: expected a path or {sweep: NAME}")

    spec = SweepSpec(name=name, command=command, tasks=list(tasks), seeds=list(seeds),
                     dataset=dataset, grid=grid_values, variants=variant_sets, set=fixed,
                     eval=ev, resources=resources, checkpoint_from=ckpt, source=source)
    expand(spec)  # every trial's overrides and templates are checked here, before anything runs
    return spec


def _check_key(key: str, fail, where: str) -> None:
    if "." not in key or key.split(".", 1)[0] not in ("model", "train", "inference", "online"):
        raise fail(f"{where}: key {key!r}: expected SECTION.FIELD with SECTION one of model, "
                   f"train, inference, online (e.g. train.lr)")


def _override_list(value: Any, fail, where: str) -> list[str]:
    """Overrides as ``SECTION.FIELD=VALUE`` strings, from a list of those or a mapping."""
    if isinstance(value, dict):
        for k in value:
            _check_key(str(k), fail, where)
        return [f"{k}={_value_str(v)}" for k, v in value.items()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"{where}: expected a list of SECTION.FIELD=VALUE strings or a mapping")
    for v in value:
        if "=" not in v:
            raise fail(f"{where}: {v!r}: expected SECTION.FIELD=VALUE, e.g. train.steps=2000")
        _check_key(v.split("=", 1)[0], fail, where)
    return list(value)


def _value_str(v: Any) -> str:
    """An override value as the config parser reads it (YAML gives ints, floats, bools, ...)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return ",".join(_value_str(x) for x in v)
    return str(v)


# ---------------------------------------------------------------------------- expansion
def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial of the sweep, in a stable order: tasks x variants x grid x seeds."""
    def fail(msg: str) -> SpecError:
        return SpecError(f"{spec.source}: {msg}")

    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys)))
    variants = list(spec.variants.items()) or [(None, [])]
    trials: list[Trial] = []
    seen: dict[str, Trial] = {}
    for task in spec.tasks:
        for vname, vsets in variants:
            for combo in combos:
                params = ((("variant", vname),) if vname else ()) + tuple(zip(keys, combo, strict=True))
                grid_sets = [f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
                overrides = tuple([*spec.set, *vsets, *grid_sets])
                for seed in spec.seeds:
                    parts = [task, *(v if k == "variant" else f"{k}={v}" for k, v in params), f"s{seed}"]
                    tid = "__".join(_SAFE.sub("_", p) for p in parts)
                    extra = ["train.seed=" + str(seed)]
                    _check_overrides(task, [*extra, *overrides], fail, tid)
                    trial = Trial(
                        id=tid, command=spec.command, task=task, seed=seed, params=params,
                        overrides=overrides, dataset=_fill(spec.dataset, task, seed, fail, "dataset"),
                        checkpoint_from=_fill(spec.checkpoint_from, task, seed, fail, "checkpoint_from"),
                        eval=dict(spec.eval))
                    if tid in seen:
                        raise fail(f"two trials share the id {tid!r} (values that differ only in "
                                   f"characters outside letters, digits and . _ + = -)")
                    seen[tid] = trial
                    trials.append(trial)
    return trials


def _fill(value: Any, task: str, seed: int, fail, where: str) -> Any:
    """``value`` with ``{task}`` / ``{seed}`` filled in (a mapping task -> value: its entry)."""
    if value is None:
        return None
    if isinstance(value, dict) and "sweep" in value:  # checkpoint_from: {sweep: NAME, match}
        return value
    if isinstance(value, dict):
        value = value[task]
    try:
        return str(value).format(task=task, seed=seed)
    except (KeyError, IndexError, ValueError) as exc:
        raise fail(f"{where}: {value!r}: only {{task}} and {{seed}} can be filled in ({exc})") from None


def _check_overrides(task: str, overrides: list[str], fail, tid: str) -> None:
    """Unknown fields, unparsable values, values outside a field's choices and out-of-range
    numbers fail here (``apply_overrides`` checks them), at load time, rather than minutes into
    a sweep."""
    try:
        apply_overrides(preset(task), overrides)
    except ValueError as exc:
        raise fail(f"trial {tid}: {exc}") from None
