"""The `gac` command. It only wires the library together; nothing imports it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from gac.config import PRESETS
from gac.inference import modes_help
from gac.sweep.commands import register as register_sweep

app = typer.Typer(
    help="Generative Actor Critic: offline and offline-to-online RL by generative modelling of "
    "trajectories and their returns.\n\nStart with `gac run` (the default pipeline on D4RL's "
    "maze2d-umaze), or `gac data make maze2d-umaze` to build a dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Make and inspect datasets (HDF5, D4RL layout).", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


behaviour_app = typer.Typer(
    help="Train and export the locomotion behaviour policies that datasets are made from "
    "(needs the `behaviour` extra: stable-baselines3).", no_args_is_help=True)
app.add_typer(behaviour_app, name="behaviour")


@behaviour_app.command("train")
def behaviour_train(
    body: Annotated[str, typer.Argument(help="hopper, walker2d or halfcheetah.")],
    budget: Annotated[int | None, typer.Option(help="Environment steps (default: per body).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    out_dir: Annotated[Path | None, typer.Option(help="Training folder (default: the cache).")] = None,
    max_minutes: Annotated[float | None, typer.Option(
        help="Stop at the first snapshot after this long; run again to continue.")] = None,
    algo: Annotated[str, typer.Option(help="Training algorithm (only ppo is implemented).")] = "ppo",
    resume: Annotated[bool, typer.Option(
        help="Continue the run in the training folder; --no-resume refuses a folder that holds "
             "one.")] = True,
) -> None:
    """Train (or continue) a PPO behaviour policy with periodic snapshots; resumable."""
    from gac.data.behaviour.ppo import train_behaviour

    try:
        train_behaviour(body, algo=algo, budget=budget, seed=seed, out_dir=out_dir, resume=resume,
                        max_minutes=max_minutes, log=typer.echo)
    except (ImportError, ValueError, KeyError, FileExistsError) as exc:
        _fail(str(exc))


@behaviour_app.command("export")
def behaviour_export(
    body: Annotated[str, typer.Argument(help="hopper, walker2d or halfcheetah.")],
    train_dir: Annotated[Path | None, typer.Option(help="Training folder (default: the cache).")] = None,
    root: Annotated[Path | None, typer.Option(
        help="Policies folder (default: the package's, gac/data/behaviour/policies/).")] = None,
    medium_fraction: Annotated[float | None, typer.Option(
        help="Medium: the first snapshot this far from R_random to R_expert (default: 1/3, "
             "D4RL's).")] = None,
    reference_episodes: Annotated[int, typer.Option(
        help="Episodes per reference return.")] = 100,
    expert_candidates: Annotated[int, typer.Option(
        help="Expert: the best of this many last snapshots.")] = 5,
) -> None:
    """Pick the medium and expert snapshots, measure reference returns, and write the numpy
    policies that `gac data make` uses."""
    from gac.data.behaviour.ppo import MEDIUM_FRACTION, export_policies

    try:
        export_policies(body, train_dir=train_dir, root=root,
                        medium_fraction=MEDIUM_FRACTION if medium_fraction is None else medium_fraction,
                        reference_episodes=reference_episodes, expert_candidates=expert_candidates,
                        log=typer.echo)
    except (ImportError, ValueError, KeyError, FileNotFoundError) as exc:
        _fail(str(exc))


@app.command("tasks")
def tasks_cmd() -> None:
    """List the tasks gac knows, with horizons and default dataset sizes."""
    from gac.tasks import TASKS

    typer.echo(f"{'task':<26}{'horizon':>8}{'default steps':>15}  D4RL counterpart")
    for name, task in TASKS.items():
        typer.echo(f"{name:<26}{task.horizon:>8}{task.default_steps:>15}  {task.d4rl_dataset}")


@data_app.command("make")
def data_make(
    task: Annotated[str, typer.Argument(help="Task name, e.g. pointmaze-umaze-goal (see `gac tasks`).")],
    steps: Annotated[int | None, typer.Option(help="Transitions to generate (default: per task).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator and the environment.")] = 0,
    noise: Annotated[float, typer.Option(help="Std of the Gaussian action noise.")] = 0.5,
    dwell: Annotated[int | None, typer.Option(
        help="pointmaze-*-goal: steps the controller holds a reached goal before the next "
             "(default 25; D4RL and maze2d-*: 0).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output HDF5 path (default: the cache folder).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    reference_episodes: Annotated[int, typer.Option(
        help="Episodes for measuring the random and expert reference returns.")] = 100,
    replay_dir: Annotated[Path | None, typer.Option(
        help="Locomotion medium-replay: the recorded PPO training buffer to use instead of "
             "rebuilding it from the committed snapshots.")] = None,
) -> None:
    """Generate a dataset the way D4RL did and save it.

    Mazes: a waypoint controller driving to random goals. Locomotion (e.g. hopper-medium):
    rollouts of the committed behaviour policies (gac/data/behaviour/policies/; noise and dwell do not apply).
    """
    from gac.data.datasets import make_dataset
    from gac.data.hdf5 import load_hdf5

    t0 = time.time()
    try:
        options = {"noise": noise, "reference_episodes": reference_episodes, "dwell": dwell,
                   "replay_dir": replay_dir}
        path = make_dataset(task, steps=steps, seed=seed, out=out, overwrite=overwrite,
                            **{k: v for k, v in options.items() if v is not None})
    except (KeyError, FileExistsError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
        return
    typer.echo(f"wrote {path} in {time.time() - t0:.1f}s")
    _print_info(load_hdf5(path), path)


@data_app.command("info")
def data_info(
    path: Annotated[Path, typer.Argument(
        help="An HDF5 dataset (gac or D4RL layout), or minari:DATASET_ID for a local Minari dataset.")],
    hist: Annotated[Path | None, typer.Option(help="Also write a return/length histogram PNG here.")] = None,
    split: Annotated[str, typer.Option(help="auto | locomotion | maze2d | gac")] = "auto",
    min_episode_length: Annotated[int, typer.Option(
        help="Fail if an episode is shorter than this many steps.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a dataset: episodes, lengths, return distribution, reference returns."""
    from gac.data.hdf5 import load_hdf5
    from gac.data.store import DataError

    try:
        if str(path).startswith("minari:"):
            from gac.data.minari_io import load_minari

            store = load_minari(str(path)[len("minari:"):])
        else:
            store = load_hdf5(path, split=split,  # type: ignore[arg-type]
                              min_episode_length=min_episode_length)
    except (DataError, ImportError) as exc:
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
        if "behavior_return" in meta:
            b = meta["behavior_return"]
            typer.echo(f"behaviour    return {b:.2f} on the evaluation task = normalised "
                       f"{normalized_score(b, lo, hi):.1f} (the data-collecting policy)")
        elif meta.get("horizon") and s["length_mean"] >= 0.9 * meta["horizon"]:
            typer.echo(f"normalised   dataset mean {normalized_score(s['return_mean'], lo, hi):.1f}")


def _parse_seeds(seeds: str) -> list[int]:
    try:
        parsed = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        parsed = []
    if not parsed:
        _fail(f"--seeds {seeds!r}: expected comma-separated integers, e.g. 0,1,2")
    return parsed


@app.command("train")
def train_cmd(
    dataset: Annotated[str, typer.Argument(
        help="A task name (its default dataset is generated once and cached) or an HDF5 path.")],
    task: Annotated[str | None, typer.Option(
        help="Task of an HDF5 dataset whose metadata does not name one.")] = None,
    seed: Annotated[int, typer.Option(help="Training seed (data sampling, init, Langevin).")] = 0,
    steps: Annotated[int | None, typer.Option(help="Gradient updates (default: task preset).")] = None,
    run_dir: Annotated[Path | None, typer.Option(
        help="Where checkpoints and logs go (default: runs/TASK-sSEED).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir from its checkpoint.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Config override SECTION.FIELD=VALUE, repeatable (e.g. --set train.lr=3e-4).")] = None,
    eval_episodes: Annotated[int, typer.Option(
        help="Episodes for the score logged during/after training (0: none).")] = 16,
) -> None:
    """Learn the GAC model offline by maximum likelihood with persistent Langevin chains."""
    from gac.data.store import DataError
    from gac.runs import eval_callback, make_trainer
    from gac.train.checkpoint import CheckpointError
    from gac.train.offline import TrainingDiverged

    sets = list(overrides or [])
    if steps is not None:
        sets.append(f"train.steps={steps}")
    name = task or (Path(dataset).stem if dataset.endswith((".hdf5", ".h5")) else dataset)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)  # e.g. minari ids
    run_dir = run_dir or Path("runs") / f"{safe}-s{seed}"
    try:
        trainer = make_trainer(dataset, run_dir, task=task, seed=seed, overrides=sets,
                               resume=resume)
    except (KeyError, ValueError, FileExistsError, DataError, ImportError, CheckpointError) as exc:
        _fail(str(exc).strip("'\""))
        return
    typer.echo(f"training {trainer.cfg.task}: {trainer.store.num_episodes} episodes, "
               f"{trainer.model.n_params():,} parameters, run dir {run_dir}"
               + (f" (resumed at step {trainer.step})" if trainer.step else ""))
    on_eval = eval_callback(eval_episodes, seed=seed) if eval_episodes else None
    try:
        history = trainer.train(on_eval=on_eval)
    except TrainingDiverged as exc:
        _fail(str(exc))
        return
    from gac.evaluation.plots import learning_curve

    learning_curve(history, run_dir / "learning_curve.png", title=f"{trainer.cfg.task} seed {seed}")
    last = history[-1] if history else {}
    typer.echo(f"done: step {trainer.step}, loss {last.get('loss', float('nan')):.4f}"
               + (f", score {last['eval_score']:.1f}" if "eval_score" in last else "")
               + f"; checkpoint {run_dir / 'checkpoint.pt'}")


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint.pt written by `gac train`.")],
    episodes: Annotated[int, typer.Option(help="Episodes per seed.")] = 50,
    seeds: Annotated[str, typer.Option(help="Comma-separated evaluation seeds.")] = "0,1,2",
    mode: Annotated[str | None, typer.Option(
        help=f"Plan inference (default: the checkpoint's config): {modes_help()}.")] = None,
    envs: Annotated[int, typer.Option(help="Environments stepped together.")] = 16,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Inference override, e.g. --set inference.n_starts=32.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="Torch threads (default 1: the same seed gives the same numbers).")] = None,
) -> None:
    """Run the policy in the real environment and print the normalised score."""
    from gac.config import RunConfig, apply_overrides
    from gac.runs import evaluate_checkpoint
    from gac.train.checkpoint import CheckpointError

    if episodes < 1 or envs < 1 or (threads is not None and threads < 1):
        _fail(f"--episodes {episodes} --envs {envs} --threads {threads}: each must be at least 1")
    seed_list = _parse_seeds(seeds)
    try:  # a bad mode or override fails before the checkpoint is read
        apply_overrides(RunConfig(), [*([f"inference.mode={mode}"] if mode else []),
                                      *(overrides or [])])
    except ValueError as exc:
        _fail(str(exc))
    try:
        result = evaluate_checkpoint(checkpoint, episodes, seed_list, mode, envs, overrides,
                                     threads=threads)
    except (CheckpointError, ValueError, KeyError) as exc:
        _fail(str(exc))
        return
    s = result.summary()
    unit = "normalised score" if result.ref else "return"
    typer.echo(f"{result.mode}: {unit} {s['score_mean']:.1f} ± {s['score_std_seeds']:.1f} "
               f"(std over {len(result.seeds)} seeds; ± {s['score_std_episodes']:.1f} over "
               f"{result.returns.size} episodes); mean return {s['return_mean']:.2f}, "
               f"predicted {s['predicted_return_mean']:.2f}")
    if "d4rl_score_mean" in s:
        typer.echo(f"{result.mode}: D4RL scale {s['d4rl_score_mean']:.1f} (approximate: D4RL's "
                   f"published references, PointMaze physics)")


# Named in `gac finetune --help`: the presets that collect without exploration.
_NO_EXPLORATION = ", ".join(name for name, values in PRESETS.items()
                            if values.get("online", {}).get("exploration") is False)


@app.command("finetune")
def finetune_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="An offline checkpoint.pt from `gac train`.")],
    env_steps: Annotated[int | None, typer.Option(
        help="Online budget in environment steps, split evenly over the stages.")] = None,
    stages: Annotated[int | None, typer.Option(help="Online stages.")] = None,
    delta_y: Annotated[float | None, typer.Option(
        help="Fixed optimism Δy (raw return units); default: the automatic rule.")] = None,
    exploration: Annotated[bool | None, typer.Option(
        "--exploration/--no-exploration",
        help="Explore with optimistic plans, or collect with the policy's own plans only (LPT's "
             "online regime). Default: the checkpoint's config (the presets: off for "
             f"{_NO_EXPLORATION}, on elsewhere).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT's folder + '-online'.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed fine-tuning run.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Config override, e.g. --set online.updates_per_stage=500.")] = None,
) -> None:
    """Continue an offline model online: explore with optimistic returns, label episodes with
    their total return only, refit, and evaluate after each stage."""
    from gac.data.store import DataError
    from gac.runs import make_online
    from gac.train.checkpoint import CheckpointError

    sets = list(overrides or [])
    for name, value in (("env_steps", env_steps), ("stages", stages), ("delta_y", delta_y)):
        if value is not None:
            sets.append(f"online.{name}={value}")
    if exploration is not None:
        sets.append(f"online.exploration={str(exploration).lower()}")
    run_dir = run_dir or Path(str(checkpoint.parent) + "-online")
    try:
        online = make_online(checkpoint, run_dir, sets, resume=resume)
    except (CheckpointError, DataError, ValueError, KeyError, FileExistsError) as exc:
        _fail(str(exc).strip("'\""))
        return
    _run_online(online, run_dir)


def _run_online(online, run_dir: Path) -> list[dict[str, float]]:
    """Run (or resume) the online stages; write report.md and online.png; print the table."""
    from gac.runs import run_online

    c = online.cfg
    typer.echo(f"fine-tuning {online.trainer.cfg.task}: {c.env_steps} env steps in {c.stages} "
               f"stages, Δy {'auto' if c.delta_y is None else c.delta_y}, "
               f"exploration {'on' if c.exploration else 'off'}; run dir {run_dir}")
    from gac.collectors import RayStartError
    from gac.train.offline import TrainingDiverged

    try:
        records, table = run_online(online, online.trainer.cfg.task, log=typer.echo)
    except (TrainingDiverged, RayStartError) as exc:
        _fail(str(exc))
        return []
    typer.echo(table)
    typer.echo(f"report: {run_dir / 'report.md'}, plots: {run_dir / 'online.png'}")
    return records


@app.command("run")
def run_cmd(
    task: Annotated[str, typer.Option(help="Task to run the pipeline on (default: D4RL's "
                                           "maze2d-umaze, where GAC leads its peers).")] = "maze2d-umaze",
    seed: Annotated[int, typer.Option(help="Seed for data, training and evaluation.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Gradient updates (default: task preset).")] = None,
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per seed.")] = 50,
    run_dir: Annotated[Path | None, typer.Option(help="Default: runs/pipeline-TASK-sSEED.")] = None,
    online_env_steps: Annotated[int | None, typer.Option(
        help="Online budget after offline training (default: the task preset's; 0 skips the "
             "online stages).")] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Config override for every stage, e.g. --set online.eval_episodes=20.")] = None,
) -> None:
    """The default pipeline: data -> offline training -> evaluation (the preset's plan choice
    and random plans) -> results table + plot -> online stages (exploration by optimistic
    returns) with the score before and after.

    Resumes where it stopped if run again with the same --run-dir.
    """
    from gac.data.store import DataError
    from gac.evaluation.plots import learning_curve
    from gac.evaluation.report import write_results
    from gac.runs import eval_callback, evaluate_checkpoint, make_online, make_trainer
    from gac.train.checkpoint import CheckpointError

    run_dir = run_dir or Path("runs") / f"pipeline-{task}-s{seed}"
    t0 = time.time()
    sets = [*(overrides or []), *([f"train.steps={steps}"] if steps else [])]
    typer.echo(f"[1/4] data: {task}")
    try:
        trainer = make_trainer(task, run_dir, seed=seed, overrides=sets, resume=True)
    except (KeyError, ValueError, DataError, CheckpointError) as exc:
        _fail(str(exc).strip("'\""))
        return
    _print_info(trainer.store, Path(trainer.store.metadata.get("source", task)))
    typer.echo(f"[2/4] training {trainer.cfg.train.steps} updates "
               f"({trainer.model.n_params():,} parameters)")
    from gac.train.offline import TrainingDiverged

    try:
        history = trainer.train(on_eval=eval_callback(16, seed=seed))
    except TrainingDiverged as exc:
        _fail(str(exc))
        return
    curve = learning_curve(history, run_dir / "learning_curve.png", title=f"{task} seed {seed}")
    # The preset's own plan choice (exploit, or maze2d's bank modes) against prior samples:
    # the policy improvement that inference brings.
    mode = trainer.cfg.inference.mode
    typer.echo(f"[3/4] evaluating: {episodes} episodes x 3 seeds, {mode} and random plans")
    ckpt = run_dir / "checkpoint.pt"
    results = {m: evaluate_checkpoint(ckpt, episodes, [0, 1, 2], mode=m, progress=False)
               for m in dict.fromkeys((mode, "random"))}
    table = write_results(run_dir / "results.md", task, trainer, results, time.time() - t0)
    typer.echo(table)
    typer.echo(f"learning curve: {curve}\nresults: {run_dir / 'results.md'}")
    budget = trainer.cfg.online.env_steps if online_env_steps is None else online_env_steps
    if budget <= 0:
        return
    typer.echo(f"[4/4] online stages: {budget} environment steps, return-only labels")
    online_dir = run_dir / "online"
    try:
        online = make_online(ckpt, online_dir, [*sets, f"online.env_steps={budget}"],
                             resume=(online_dir / "checkpoint.pt").exists())
    except (CheckpointError, DataError, ValueError, KeyError) as exc:
        _fail(str(exc).strip("'\""))
        return
    records = _run_online(online, online_dir)
    typer.echo(f"score before online stages {records[0]['score']:.1f}, after "
               f"{records[-1]['score']:.1f} ({records[-1]['score'] - records[0]['score']:+.1f}); "
               f"total {(time.time() - t0) / 60:.1f} min")


register_sweep(app)  # `gac sweep`, `gac report`: defined in gac.sweep.commands


def main() -> None:
    app()


if __name__ == "__main__":
    main()
