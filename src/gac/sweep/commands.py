"""`gac sweep` and `gac report`, registered on the main app by ``register``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def sweep_cmd(
    spec: Annotated[Path, typer.Argument(
        help="Sweep file (YAML): name, command (train | finetune), tasks, seeds, grid, set, eval; "
        "see examples/sweep_umaze.yaml.")],
    address: Annotated[str | None, typer.Option(
        help="Run on this existing Ray cluster (e.g. ray://head:10001 or auto) instead of a "
        "local Ray instance.")] = None,
    max_parallel: Annotated[int | None, typer.Option(
        help="Trials running at once (default: as many as the CPUs allow, one CPU per trial "
        "unless resources.cpus says otherwise).")] = None,
    local: Annotated[bool, typer.Option(
        "--local", help="Run the trials one after another in this process, without Ray.")] = False,
    root: Annotated[Path, typer.Option(help="Sweeps live in ROOT/NAME/TRIAL/.")] = Path("runs/sweeps"),
    retry_failed: Annotated[bool, typer.Option(
        help="Run failed trials again (resuming from their checkpoints).")] = True,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the trials and their status; run nothing.")] = False,
) -> None:
    """Run a grid of `gac train` or `gac finetune` trials (tasks x seeds x overrides) and
    aggregate them across seeds into one table and plots.

    Uses Ray when it is installed (gac's `ray` extra), otherwise runs trials one after
    another. Run it again to skip finished trials and resume interrupted or failed ones from
    their checkpoints; a failing trial is reported and never stops the others.
    """
    from gac.sweep.report import build_report
    from gac.sweep.runner import run_sweep
    from gac.sweep.spec import SpecError, expand, load_spec
    from gac.sweep.trial import SweepError, read_status

    try:
        sweep = load_spec(spec)
    except SpecError as exc:
        _fail(str(exc))
        return
    if dry_run:
        trials = expand(sweep)
        typer.echo(f"sweep {sweep.name}: `gac {sweep.command}`, {len(trials)} trials under "
                   f"{root / sweep.name}")
        for t in trials:
            status = read_status(root / sweep.name / t.id).get("status")
            typer.echo(f"  {status:<8} {t.id}   {' '.join(t.overrides)}")
        return
    try:
        result = run_sweep(sweep, root=root, backend="local" if local else "auto", address=address,
                           max_parallel=max_parallel, retry_failed=retry_failed, log=typer.echo)
    except (SweepError, SpecError) as exc:
        _fail(str(exc))
        return
    typer.echo("")
    typer.echo(build_report(result.sweep_dir))
    typer.echo(f"report: {result.sweep_dir / 'report.md'}")
    if result.failed:
        _fail(f"{len(result.failed)} trial(s) failed: {', '.join(result.failed)}", code=1)


def report_cmd(
    sweep_dir: Annotated[Path, typer.Argument(
        help="A sweep folder (ROOT/NAME, e.g. runs/sweeps/umaze-seeds).")],
) -> None:
    """Rebuild a sweep's aggregated table (mean, std, 95% CI, IQM across seeds), trials.csv and
    plots from its finished trials; works while the sweep runs, and without Ray."""
    from gac.sweep.report import build_report

    try:
        text = build_report(sweep_dir)
    except FileNotFoundError as exc:
        _fail(str(exc))
        return
    typer.echo(text)
    typer.echo(f"report: {sweep_dir / 'report.md'}")


def _help(fn) -> str:
    """The docstring with each paragraph on one line: --help rewraps it to the terminal."""
    return "\n\n".join(" ".join(p.split()) for p in (fn.__doc__ or "").split("\n\n"))


def register(app: typer.Typer) -> None:
    app.command("sweep", help=_help(sweep_cmd))(sweep_cmd)
    app.command("report", help=_help(report_cmd))(report_cmd)
