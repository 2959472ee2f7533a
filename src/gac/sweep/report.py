"""A sweep's aggregated results, rebuilt from its trial folders alone.

Per setting (task x variant x grid values), across seeds: mean, sample std, a 95% percentile
bootstrap interval of the mean, and the interquartile mean (IQM: the mean of the middle 50% of
runs, rliable's robust aggregate). Writes ``report.md`` (Markdown tables), ``report.json``,
``trials.csv`` (one row per trial), ``scores.png`` (bars with intervals and the seeds' dots)
and ``curves.png`` (learning or online curves, mean and std across seeds).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gac.sweep.spec import Trial
from gac.sweep.trial import STATUS, SWEEP, TRIAL


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: ``floor(n/4)`` runs cut from each end (scipy's trim_mean(x, 0.25),
    which rliable uses); with fewer than 4 runs it is the mean."""
    x = np.sort(np.asarray(x, float))
    cut = len(x) // 4
    return float(x[cut:len(x) - cut].mean()) if len(x) else float("nan")


def bootstrap_ci(x: np.ndarray, level: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: a report rebuilds identically).
    With a handful of seeds it is narrower than it should be; it says how much the seeds
    disagree, not more."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def aggregate(values: list[float]) -> dict[str, float]:
    x = np.asarray(values, float)
    lo, hi = bootstrap_ci(x)
    return {"n": len(x), "mean": float(x.mean()) if len(x) else float("nan"),
            "std": float(x.std(ddof=1)) if len(x) > 1 else float("nan"),
            "ci_low": lo, "ci_high": hi, "iqm": iqm(x)}


def load_trials(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every trial folder's definition and status, in the sweep's order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep folder")
    order: list[str] = []
    if (sweep_dir / SWEEP).exists():
        order = json.loads((sweep_dir / SWEEP).read_text()).get("trials", [])
    dirs = {p.parent.name: p.parent for p in sweep_dir.glob(f"*/{TRIAL}")}
    if not dirs:
        raise FileNotFoundError(f"{sweep_dir}: no trial folders (*/{TRIAL}); is it a sweep folder?")
    names = [n for n in order if n in dirs] + sorted(n for n in dirs if n not in order)
    out = []
    for name in names:
        d = dirs[name]
        trial = json.loads((d / TRIAL).read_text())
        status = json.loads((d / STATUS).read_text()) if (d / STATUS).exists() else {"status": "pending"}
        out.append({"trial": trial, "status": status, "dir": d})
    return out


def _setting(trial: dict[str, Any]) -> str:
    return Trial.from_dict(trial).setting


def summarise(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, setting): trial counts and the aggregates of each metric."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in trials:
        groups.setdefault((t["trial"]["task"], _setting(t["trial"])), []).append(t)
    rows = []
    for (task, setting), members in groups.items():
        done = [m for m in members if m["status"].get("status") == "done"]
        row: dict[str, Any] = {
            "task": task, "setting": setting, "trials": len(members), "done": len(done),
            "failed": sum(m["status"].get("status") == "failed" for m in members),
            "seeds": [m["trial"]["seed"] for m in done]}
        for metric in ("score", "gain", "offline_score"):
            values = [m["status"]["result"][metric] for m in done
                      if m["status"].get("result", {}).get(metric) is not None]
            if values:
                row[metric] = {**aggregate(values), "values": values}
        rows.append(row)
    return rows


def _fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _table(rows: list[dict[str, Any]], metric: str) -> list[str]:
    lines = ["| task | setting | seeds done | mean | std | 95% CI (bootstrap) | IQM |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r.get(metric)
        counts = f"{r['done']}/{r['trials']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        if a is None:
            lines.append(f"| {r['task']} | {r['setting']} | {counts} | – | – | – | – |")
            continue
        ci = "–" if math.isnan(a["ci_low"]) else f"[{_fmt(a['ci_low'])}, {_fmt(a['ci_high'])}]"
        lines.append(f"| {r['task']} | {r['setting']} | {counts} | {_fmt(a['mean'])} | "
                     f"{_fmt(a['std'])} | {ci} | {_fmt(a['iqm'])} |")
    return lines


def markdown(trials: list[dict[str, Any]], rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    statuses = [t["status"].get("status", "pending") for t in trials]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("done", "failed", "running", "pending")
                       if statuses.count(s))
    name = meta.get("name") or (trials[0]["dir"].parent.name if trials else "?")
    command = meta.get("command") or (trials[0]["trial"]["command"] if trials else "?")
    ev = meta.get("eval") or (trials[0]["trial"].get("eval", {}) if trials else {})
    normalised = any(t["status"].get("result", {}).get("normalised") for t in trials)
    unit = "normalised score" if normalised else "return"
    lines = [f"## Sweep {name}: `gac {command}`, {len(trials)} trials ({counts})", "",
             f"Score: the {unit} of each trial's final policy ({ev.get('episodes', '?')} episodes "
             f"x evaluation seeds {ev.get('seeds', '?')}, {ev.get('mode') or 'the config'}'s "
             f"plan inference). Across training seeds: mean, sample std, 95% percentile bootstrap "
             f"interval of the mean (10,000 resamples) and IQM (mean of the middle 50%).", "",
             *_table(rows, "score")]
    if any("gain" in r for r in rows):
        lines += ["", "Online gain: score after the last online stage minus the offline model's "
                  "score (both from the stage evaluations of `gac finetune`).", "",
                  *_table(rows, "gain")]
    failed = [t for t in trials if t["status"].get("status") == "failed"]
    if failed:
        lines += ["", "Failed trials (traceback in the trial's error.txt):", ""]
        lines += [f"- `{t['trial']['id']}`: {t['status'].get('error')}" for t in failed]
    unfinished = [t["trial"]["id"] for t in trials
                  if t["status"].get("status") in ("running", "pending")]
    if unfinished:
        lines += ["", f"Not finished (run the sweep again to resume): "
                      f"{', '.join(f'`{u}`' for u in unfinished)}"]
    return "\n".join(lines) + "\n"


def write_trials_csv(trials: list[dict[str, Any]], path: Path) -> None:
    keys = ["id", "task", "setting", "seed", "status", "score", "return", "gain", "offline_score",
            "steps", "wall_s_total", "error"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for t in trials:
            res, st = t["status"].get("result") or {}, t["status"]
            w.writerow({"id": t["trial"]["id"], "task": t["trial"]["task"],
                        "setting": _setting(t["trial"]), "seed": t["trial"]["seed"],
                        "status": st.get("status"), "score": res.get("score"),
                        "return": res.get("return"), "gain": res.get("gain"),
                        "offline_score": res.get("offline_score"), "steps": res.get("steps"),
                        "wall_s_total": st.get("wall_s_total"), "error": st.get("error")})


# ---------------------------------------------------------------------------- plots
def plot_scores(rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    from gac.evaluation.plots import plt, save_figure

    tasks = list(dict.fromkeys(r["task"] for r in rows if "score" in r))
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.5, 1.2 * max(
        sum(r["task"] == t for r in rows) for t in tasks)) * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        mine = [r for r in rows if r["task"] == task and "score" in r]
        x = np.arange(len(mine))
        means = np.array([r["score"]["mean"] for r in mine])
        lo = np.array([r["score"]["ci_low"] for r in mine])
        hi = np.array([r["score"]["ci_high"] for r in mine])
        err = np.nan_to_num(np.stack([means - lo, hi - means]), nan=0.0)
        ax.bar(x, means, yerr=err, capsize=4, color="tab:blue", alpha=0.6,
               error_kw={"ecolor": "dimgrey"})
        for i, r in enumerate(mine):
            vals = r["score"]["values"]
            ax.scatter(np.full(len(vals), i) + np.linspace(-0.25, 0.25, len(vals)), vals,
                       color="black", s=12, zorder=3)
        ax.set_xticks(x, [r["setting"] for r in mine], rotation=30, ha="right", fontsize=8)
        ax.set_title(task, fontsize=10)
        ax.set_ylabel("score (bars: mean, 95% CI; dots: seeds)", fontsize=8)
    return save_figure(fig, path, title)


def plot_curves(trials: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Per task, per setting: the trials' curves (online score, else evaluation score during
    training, else training loss), mean and std across seeds at the x values they share."""
    from gac.evaluation.plots import mean_over_seeds, plt, save_figure

    done = [t for t in trials if t["status"].get("status") == "done"]
    curves = [t["status"]["result"].get("curves") or {} for t in done]
    # Online score, else the score logged during training, else the loss: the first that every
    # trial has as a curve (two points or more), else the first every trial has at all.
    have = [m for m in ("score", "eval_score", "loss") if curves and all(m in c for c in curves)]
    metric = next((m for m in have if all(len(c[m]) > 1 for c in curves)), have[0] if have else None)
    if metric is None:
        return None
    tasks = list(dict.fromkeys(t["trial"]["task"] for t in done))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        by_setting: dict[str, list[list[list[float]]]] = {}
        for t, c in zip(done, curves, strict=True):
            if t["trial"]["task"] == task:
                by_setting.setdefault(_setting(t["trial"]), []).append(c[metric])
        for setting, runs in by_setting.items():
            xs, mean, std = mean_over_seeds(runs)
            ax.plot(xs, mean, marker="o" if len(xs) < 20 else None, ms=3,
                    label=f"{setting} ({len(runs)} seeds)")
            ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("online environment steps" if metric == "score" else "update step")
        ax.set_ylabel({"score": "score", "eval_score": "evaluation score",
                       "loss": "training loss"}[metric])
        ax.set_title(task, fontsize=10)
        ax.legend(fontsize=7)
    return save_figure(fig, path, title)


def build_report(sweep_dir: str | Path) -> str:
    """Write the sweep's report files from its trial folders; returns the Markdown."""
    sweep_dir = Path(sweep_dir)
    trials = load_trials(sweep_dir)
    meta = json.loads((sweep_dir / SWEEP).read_text()) if (sweep_dir / SWEEP).exists() else {}
    rows = summarise(trials)
    text = markdown(trials, rows, meta)
    name = meta.get("name", sweep_dir.name)
    plots = [p for p in (plot_scores(rows, sweep_dir / "scores.png", f"sweep {name}"),
                         plot_curves(trials, sweep_dir / "curves.png", f"sweep {name}")) if p]
    if plots:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
    (sweep_dir / "report.md").write_text(text)
    (sweep_dir / "report.json").write_text(json.dumps(_strict(
        {"name": name, "settings": rows,
         "trials": [{"id": t["trial"]["id"], "status": t["status"].get("status"),
                     "error": t["status"].get("error"),
                     "result": {k: v for k, v in (t["status"].get("result") or {}).items()
                                if k != "curves"}} for t in trials]}), indent=2))
    write_trials_csv(trials, sweep_dir / "trials.csv")
    return text


def _strict(x: Any) -> Any:
    """NaN (one seed has no std or interval) as null: strict JSON readers reject NaN."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    if isinstance(x, float | np.floating):
        return None if math.isnan(x) else float(x)
    return x
