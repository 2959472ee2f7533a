"""The `gac` command. It only wires the library together; nothing imports it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Generative Actor Critic: offline and offline-to-online RL by generative modelling of "
    "trajectories and their returns.\n\nStart with `gac run` (the default pipeline on "
    "pointmaze-umaze), or `gac data make pointmaze-umaze` to build a dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Make and inspect datasets (HDF5, D4RL layout).", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command("tasks")
def tasks_cmd() -> None:
    """List the tasks gac knows, with horizons and default dataset sizes."""
    from gac.tasks import TASKS

    typer.echo(f"{'task':<26}{'horizon':>8}{'default steps':>15}  D4RL counterpart")
    for name, task in TASKS.items():
        typer.echo(f"{name:<26}{task.horizon:>8}{task.default_steps:>15}  {task.d4rl_dataset}")


@data_app.command("make")
def data_make(
    task: Annotated[str, typer.Argument(help="Task name, e.g. pointmaze-umaze (see `gac tasks`).")],
    steps: Annotated[int | None, typer.Option(help="Transitions to generate (default: per task).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator and the environment.")] = 0,
    noise: Annotated[float, typer.Option(help="Std of the Gaussian action noise.")] = 0.5,
    out: Annotated[Path | None, typer.Option(help="Output HDF5 path (default: the cache folder).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    reference_episodes: Annotated[int, typer.Option(
        help="Episodes for measuring the random and expert reference returns.")] = 100,
) -> None:
    """Generate a dataset the way D4RL did (waypoint controller to random goals) and save it."""
    from gac.data.datasets import make_dataset
    from gac.data.hdf5 import load_hdf5

    t0 = time.time()
    try:
        path = make_dataset(task, steps=steps, seed=seed, out=out, overwrite=overwrite, noise=noise,
                            reference_episodes=reference_episodes)
    except (KeyError, FileExistsError) as exc:
        _fail(str(exc).strip("'\""))
        return
    typer.echo(f"wrote {path} in {time.time() - t0:.1f}s")
    _print_info(load_hdf5(path), path)


@data_app.command("info")
def data_info(
    path: Annotated[Path, typer.Argument(help="An HDF5 dataset (gac or D4RL layout).")],
    hist: Annotated[Path | None, typer.Option(help="Also write a return/length histogram PNG here.")] = None,
    split: Annotated[str, typer.Option(help="auto | locomotion | maze2d | gac")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a dataset: episodes, lengths, return distribution, reference returns."""
    from gac.data.hdf5 import load_hdf5
    from gac.data.store import DataError

    try:
        store = load_hdf5(path, split=split)  # type: ignore[arg-type]
    except DataError as exc:
        _fail(str(exc))
        return
    if as_json:
        typer.echo(json.dumps({**store.summary(), "metadata": store.metadata}, indent=2,
                              default=str))
    else:
        _print_info(store, path)
    if hist:
        from gac.evaluation.plots import return_histogram

        return_histogram(store.returns, store.lengths, hist, title=str(path.name))
        typer.echo(f"histogram: {hist}")


def _print_info(store, path: Path) -> None:
    from gac.tasks import normalized_score

    s = store.summary()
    meta = store.metadata
    typer.echo(f"dataset      {path}")
    if "task" in meta:
        typer.echo(f"task         {meta['task']}  (generator seed {meta.get('seed')})")
    typer.echo(f"episodes     {s['episodes']}   steps {s['steps']}   "
               f"obs_dim {s['obs_dim']}   act_dim {s['act_dim']}")
    typer.echo(f"length       min {s['length_min']}  mean {s['length_mean']:.1f}  "
               f"max {s['length_max']}")
    typer.echo(f"return       min {s['return_min']:.2f}  mean {s['return_mean']:.2f}  "
               f"median {s['return_median']:.2f}  max {s['return_max']:.2f}")
    if "ref_min_score" in meta and "ref_max_score" in meta:
        lo, hi = meta["ref_min_score"], meta["ref_max_score"]
        typer.echo(f"references   R_random {lo:.2f}   R_expert {hi:.2f}   "
                   f"(evaluation task, {meta.get('ref_episodes', '?')} episodes each)")
        if meta.get("horizon") and s["length_mean"] >= 0.9 * meta["horizon"]:
            typer.echo(f"normalised   dataset mean {normalized_score(s['return_mean'], lo, hi):.1f}")


@app.command("run")
def run_cmd(
    task: Annotated[str, typer.Option(help="Task to run the pipeline on.")] = "pointmaze-umaze",
    seed: Annotated[int, typer.Option(help="Seed for data, training and evaluation.")] = 0,
) -> None:
    """The default pipeline: make (or reuse) the task's dataset and summarise it."""
    from gac.data.datasets import resolve_dataset
    from gac.paths import dataset_path
    from gac.tasks import get_task

    t = get_task(task)
    store = resolve_dataset(task, seed=seed)
    _print_info(store, dataset_path(task, t.default_steps, seed))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
