"""Typed configs for every part of gac, and per-task presets.

Defaults live in the dataclasses; tuned values live in ``PRESETS``; the CLI overrides either.
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal


@dataclass
class DataConfig:
    """How a dataset's stream becomes the trajectories the model learns from."""

    # "goal": the dataset's own episodes; for maze2d streams, the segments between goal changes
    # (D4RL's timeouts), as LPT cuts them, each labelled with its return for the evaluation
    # goal. "window": consecutive windows of the task's horizon, each labelled with its return
    # over the window: the length and return scale of an evaluation episode.
    segments: Literal["goal", "window"] = "goal"


@dataclass
class ModelConfig:
    """Shape of the GAC generative model p(tau, y) = int p(tau|U(z0)) p(y|U(z0)) N(z0) dz0."""

    obs_dim: int = 0  # filled from the data
    act_dim: int = 0  # filled from the data
    n_latent: int = 4  # latent plan tokens
    d_model: int = 128  # width of transformer and of each latent token
    n_layers: int = 3
    n_heads: int = 1
    context_steps: int = 32  # each token attends to tokens of the last K environment steps
    max_timestep: int = 1000  # timestep embedding table size (timesteps are clamped)
    timestep_embedding: bool = True
    condition_on_actions: bool = True  # False: past actions are not inputs (see GACModel)
    # How a state becomes a token. "linear": one linear layer (DT's and LPT's embedding);
    # "mlp": Linear-GELU-Linear with `state_hidden` units. A low-dimensional state through a
    # linear embedding and pre-LayerNorm blocks fits a maze controller's actions poorly: on
    # maze2d-medium a plan-free decoder reached an action NLL of 0.79 in 2,000 updates with
    # "linear" and 0.46 with "mlp" (docs/design-notes.md).
    state_encoder: Literal["linear", "mlp"] = "linear"
    state_hidden: int = 256
    dropout: float = 0.0  # residual/embedding dropout; attention dropout is never used
    prior: Literal["unet", "mlp", "identity"] = "unet"  # z = U(z0)
    unet_dim: int = 16
    unet_mults: tuple[int, ...] = (1, 2, 4, 8)
    mlp_hidden: int = 512  # hidden width of the MLP prior
    # Width of the plan noise z0. 0: z0 has z's shape (n_latent x d_model), as in LPT. N > 0
    # (prior "mlp" only): z0 is N numbers that U maps to the n_latent tokens, a bottleneck on what
    # one trajectory's plan can carry (where to go, not the controller's per-step noise).
    plan_dim: int = 0
    return_hidden: int = 128  # hidden width of the return head r(z[, s0])
    return_condition_s0: bool = False  # p(y | z, s0): matters where return depends on start
    action_sigma: float = 0.7071  # p(a|.) = N(mu, sigma^2); LPT's squared-error sum = sigma^2 1/2
    return_sigma: float = 0.7071  # p(y|z) = N(r(z), sigma^2) in scaled return units
    # Above 0: an end head models where the trajectory ends, p(s_T | z, s0) = N(e(z, s0),
    # end_sigma^2) per entry of the normalised last observation, in the posterior and the loss
    # like the return. It makes the plan carry its destination (part of tau, not a reward).
    # 0: no end head (LPT's model).
    end_sigma: float = 0.0


@dataclass
class InferenceConfig:
    """How a latent plan z0 is chosen before (or during) an episode."""

    # A name in the registry gac.inference.MODES (exploit, refine, guided, random, elite);
    # `gac eval --help` lists them with what each does.
    mode: str = "exploit"
    # Which weights play. "averaged": the moving average of training (train.ema_decay > 0)
    # where the checkpoint keeps one, else the trained weights; "trained": the optimiser's last.
    weights: Literal["averaged", "trained"] = "averaged"
    # Exploit: the ascent converges fast. Measured (50 episodes, seed 0): 16 starts x 30 steps
    # vs 8 x 15 scored 57.2 vs 57.6 (medium), 98.3 vs 98.1 and 99.8 vs 100.0 (umaze, 2 models),
    # with the same predicted returns, at a quarter of the cost (plan search was half of the
    # policy's time in 300-step rollouts).
    n_starts: int = 8  # exploit: parallel restarts, best kept
    ascent_steps: int = 15  # exploit, refine: gradient-ascent steps on the plan
    ascent_lr: float = 0.3  # exploit, refine: ascent step size ("sphere": an angle)
    # exploit: "penalty" maximises r(U(z0)) - lambda/2 |z0|^2; "sphere" maximises r on the
    # prior's typical set |z0| = sqrt(dim). Measured on pointmaze-medium-goal (48 episodes): penalty
    # 55.8, sphere 14.2, random plans 25.1 -- on the sphere the ascent finds plans the return
    # head over-rates (predicted 140 vs a data maximum of 74), so penalty is the default.
    constraint: Literal["sphere", "penalty"] = "penalty"
    prior_weight: float = 1.0  # lambda of the "penalty" objective (refine: of the trust region)
    guidance: float = 1.0  # omega of LPT's exploitation-inclined posterior
    target_return: float | None = None  # guided: y* in raw units (None: dataset max)
    # The Langevin sampler of p(z0 | y) (z <- z - s^2/2 grad E + noise * s * eps), as the
    # train section's for the posterior chains.
    langevin_steps: int = 15  # guided: Langevin steps (online exploration: online.explore_steps)
    langevin_step_size: float = 0.3  # guided and online exploration: the step s
    langevin_noise: float = 1.0  # guided: noise scale (1: Langevin; 0: descent to the mode)
    elite_episodes: int = 8  # elite, refine, select: plans drawn from this many best
    # (arrive: the first observations of this many best segments mark the destination)
    # local: the plan of the best-return segment among the `local_share` of the training
    # segments whose first observation lies nearest the current state; nearness on the
    # observation's first `local_dims` entries (mazes: 2, the position), or on every entry,
    # normalised (0). A share, not a count: the best count grew with the data (umaze: 128 of
    # 1,400 plans at 100k steps, 1,280 of 14,000 at 1M; docs/design-notes.md).
    local_share: float = 0.1
    local_dims: int = 0
    # local, stitch: above 0, the candidates are instead the segments whose first observation
    # lies within this distance of the current state (mazes: a cell is 1 unit, walls are whole
    # cells, so 0.5-1 never reaches across a wall), falling back to the local_share nearest
    # where none does. A count reaches into neighbouring cells wherever the data are sparse.
    # No preset uses it: on maze2d-medium it did not beat the share (docs/design-notes.md).
    local_radius: float = 0.0
    # stitch: segment i leads to segment j where j's first observation lies within
    # `stitch_radius` of i's last (in local_dims' metric); values are discounted by
    # stitch_gamma per step of a segment. arrive: a segment arrives at the destination where
    # its last observation lies within `stitch_radius` of it.
    stitch_gamma: float = 0.99
    stitch_radius: float = 0.5
    # lookahead: a candidate's own term, r(z, s) from the return head for this state ("model"),
    # or the segment's data return y_i ("data"); either way plus gamma^L V(e(z, s)).
    lookahead_return: Literal["model", "data"] = "model"
    # Re-plan every this many steps (0: once per episode): a new plan from the current state as
    # s0, by the same mode; the decoder's history is replayed under the new plan.
    replan_every: int = 0


@dataclass
class TrainConfig:
    """Offline maximum-likelihood training with persistent Langevin posterior chains."""

    steps: int = 2000
    batch_size: int = 32
    window: int = 32  # scored steps per sampled sub-trajectory
    burn_in: int | None = None  # unscored history before the window (None: exact receptive field)
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    return_weight: float = 0.25  # lambda_y: loss = action NLL + lambda_y * return NLL
    return_scale: float | None = None  # raw return / scale = model units (None: from task)
    langevin_steps: int = 2  # persistent-chain steps per update
    # Divides the trajectory term of the chains' energy (1: the exact posterior). Above 1 the
    # plan explains less of each step's action noise, which it otherwise can memorise.
    posterior_temperature: float = 1.0
    langevin_step_size: float = 0.3
    # Scale of the chains' Langevin noise. 1: LPT's sampler; 0: the chains descend the posterior
    # energy towards its mode (MAP plans; the locomotion presets, see PRESETS); in between, a
    # colder sampler.
    langevin_noise: float = 1.0
    # How an update gets the chains' last move and the parameters' gradient. "exact": every
    # Langevin step is its own forward/backward (z only), then one more pass at the moved chains
    # for the parameters. "shared": the last chain move and the parameter gradient come from one
    # pass at the chain state before that move (one transformer pass fewer per update; the
    # parameters see the chains one step behind). Measured in README "Speed".
    chain_grad: Literal["exact", "shared"] = "exact"
    # Which window of each sampled trajectory the parameters' pass scores. "same": the window the
    # chains just moved on (LPT). "fresh": another window of the same trajectories, drawn
    # independently: the plan then cannot carry what only the chains' window showed (its
    # per-step action noise), so the decoder learns what a plan says about the whole trajectory
    # and reads the rest off the state (docs/design-notes.md, "the plan fitted to one window").
    param_window: Literal["same", "fresh"] = "same"
    # Weights averaged over training (Polyak / EMA): after every optimiser step the average moves
    # by (1 - d) towards the weights, d = min(ema_decay, (1 + n) / (10 + n)) after n updates, so
    # that an early average is not dominated by the initial weights. 0: off. The average does
    # not feed back into training (the trained weights, chains and losses are those of a run
    # without it); evaluation plays it where inference.weights="averaged".
    ema_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    # torch threads. None: one, so that a seed gives the same numbers on a machine: with torch's
    # default (2 on a 2-core CPU) two runs of one seed differed in the 4th digit of the loss
    # after 150 updates, however loaded the machine; on one thread they agree to the last digit.
    # N > 1 may be faster on large models, without that guarantee.
    threads: int | None = None
    log_every: int = 50
    eval_every: int = 0  # 0: only at the end
    eval_episodes: int = 16
    checkpoint_every: int = 500


@dataclass
class OnlineConfig:
    """Offline-to-online fine-tuning: stages of collection, refit and evaluation."""

    env_steps: int = 36_000  # online budget in environment steps, fixed up front
    stages: int = 3
    explore_share: float = 1.0  # share of collected episodes planned by exploration (rest: exploit)
    exploration: bool = True  # False: collect with exploitation plans only (LPT's online regime)
    delta_y: float | None = None  # fixed optimism (raw return units); None: the automatic rule
    ref_quantile: float = 0.8  # y_ref = this quantile of the returns seen so far
    # Which returns y_ref and the automatic delta-y's std come from. "episodes": every episode
    # played on the evaluation task (the offline policy's evaluation before stage 1, then the
    # collected and evaluated ones): the evaluation episode's scale from stage 1 on. "data": the
    # collected episodes, the offline trajectories before any (maze2d goal segments: another
    # scale, docs/design-notes.md "Offline-to-online: y_ref on the episode scale").
    ref_pool: Literal["episodes", "data"] = "episodes"
    kappa_init: float = 0.5  # automatic rule: delta_y = kappa * std(returns seen so far)
    kappa_factor: float = 1.5  # automatic rule: kappa is multiplied or divided by this
    target_success: float = 0.2  # automatic rule: wanted share of episodes reaching y_ref
    explore_steps: int = 30  # Langevin steps of p(z0 | y+)
    # Where those Langevin chains start. "prior": prior samples (the sampler of p(z0 | y+)).
    # "plan": the plan the inference mode picks for the state, so exploration moves the plan the
    # evaluated policy would play toward y+ (with few steps, a local perturbation of it).
    explore_from: Literal["prior", "plan"] = "prior"
    updates_per_stage: int = 1000
    # Share of trained steps drawn from online episodes (None: in proportion to their steps,
    # i.e. no reweighting); like the offline/online mixing ratio of Cal-QL-style fine-tuning.
    online_share: float | None = None
    # The plans that the bank modes (local, stitch, elite, select, refine) choose from. "all":
    # every training episode's, collected ones included. "offline": the offline data's only;
    # collected episodes still train the model. On maze2d the collected episodes are whole
    # evaluation episodes among goal segments, on another return scale, and as bank plans they
    # lowered the choice (docs/design-notes.md, "Offline-to-online: collected plans in the bank").
    plan_bank: Literal["all", "offline"] = "all"
    # What the refits do to the offline trajectories' chains (their plans, which the bank modes
    # play). "move": they keep sampling, as offline. "fixed": they stay where offline training
    # left them, so the decoder refits around the plans it was trained with; only the collected
    # episodes' chains move. Each update moves a chain on one window, so "move" drifts the bank
    # away from what the policy had learnt to follow (docs/design-notes.md, twenty-sixth session).
    offline_plans: Literal["move", "fixed"] = "move"
    # The refits' learning rate as a share of train.lr. 0.1 continues where the offline
    # schedule ends (its cosine decays to a tenth of the peak).
    refit_lr_factor: float = 0.1
    eval_episodes: int = 50
    n_envs: int = 16
    # A group of episodes is played in `collect_shards` shards, each with its own batch,
    # environment seeds and plan generator: episodes depend on the shard count only, never on
    # where shards run -- in this process one after another ("local"), or in parallel on
    # `collector_actors` Ray actors ("ray", needs the `ray` extra) -- so both give identical
    # episodes. Shards rather than per-episode seeds: batched CPU matmuls round differently for
    # different batch sizes, so only identical batches give bit-identical episodes.
    collector: Literal["local", "ray"] = "local"
    collector_actors: int = 2
    collect_shards: int = 2


@dataclass
class RunConfig:
    """Everything a `gac train` run needs; saved in the run directory and the checkpoint."""

    task: str = "pointmaze-umaze-goal"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """A config from ``to_dict``'s output, including configs saved before fields were
        renamed (``RENAMED``): their values go to the new fields."""
        model = d.get("model", {})
        if "unet_mults" in model:
            model = {**model, "unet_mults": tuple(model["unet_mults"])}
        return cls(
            task=d.get("task", cls.task),
            data=_build(DataConfig, d.get("data", {})),
            model=_build(ModelConfig, model),
            train=_build(TrainConfig, d.get("train", {})),
            inference=_build(InferenceConfig, _renamed("inference", d.get("inference", {}))),
            online=_build(OnlineConfig, d.get("online", {})),
        )


# Fields renamed since configs were first saved: section -> old name -> the new fields that
# take its value (one name that meant two things went to both), and old mode names.
RENAMED: dict[str, dict[str, tuple[str, ...]]] = {
    "inference": {"n_steps": ("ascent_steps", "langevin_steps"),
                  "step_size": ("ascent_lr", "langevin_step_size"),
                  "noise": ("langevin_noise",)},
}
RENAMED_MODES = {"prior": "random"}


def _renamed(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with old field names (and old mode names) mapped to the new ones; a new
    name given explicitly wins over an old one."""
    out = dict(values)
    for old, new_names in RENAMED.get(section, {}).items():
        if old in out:
            value = out.pop(old)
            if isinstance(value, bool):  # inference.noise was a flag; its heir is a scale
                value = float(value)
            for name in new_names:
                out.setdefault(name, value)
    if section == "inference" and out.get("mode") in RENAMED_MODES:
        out["mode"] = RENAMED_MODES[out["mode"]]
    return out


def renamed_hint(section: str, name: str) -> str | None:
    """How to write an old field name now (None: not a renamed field)."""
    new = RENAMED.get(section, {}).get(name)
    if new is None:
        return None
    return f"{section}.{name} was renamed: use " + " or ".join(f"{section}.{n}" for n in new)


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)


SECTIONS = ("data", "model", "train", "inference", "online")


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """A copy of ``cfg`` with ``section.field=value`` strings (e.g. ``train.lr=1e-4``) applied,
    checked (``check_config``); ``cfg`` itself is left as it was."""
    cfg = replace(cfg)  # sections are replaced below, never changed in place
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r}: expected SECTION.FIELD=VALUE, e.g. train.lr=1e-4")
        key, raw = item.split("=", 1)
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ValueError(f"override {item!r}: section must be one of {', '.join(SECTIONS)}")
        sub = getattr(cfg, section)
        types = {f.name: f.type for f in fields(sub)}
        hint = renamed_hint(section, name)
        if hint:
            raise ValueError(f"override {item!r}: {hint}")
        if section == "inference" and name == "mode" and raw in RENAMED_MODES:
            raise ValueError(f"override {item!r}: mode {raw!r} was renamed {RENAMED_MODES[raw]!r}")
        if name not in types:
            raise ValueError(f"override {item!r}: {section} has no field {name!r}; known: {sorted(types)}")
        current = getattr(sub, name)
        setattr(cfg, section, replace(sub, **{name: _parse(raw, current, item)}))
    check_config(cfg)
    return cfg


def choices(cls: type, name: str) -> tuple[Any, ...]:
    """The values a ``Literal`` field of a config dataclass allows (empty for other fields)."""
    hint = typing.get_type_hints(cls)[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


# Lower bounds of numeric fields: below them a run fails obscurely or silently does nothing.
_AT_LEAST: dict[str, int | float] = {
    **{f"model.{k}": 1 for k in ("n_latent", "d_model", "n_layers", "n_heads", "context_steps",
                                 "max_timestep", "return_hidden", "mlp_hidden", "unet_dim")},
    "model.plan_dim": 0,  # 0: z0 of z's shape
    "model.end_sigma": 0,  # 0: no end head
    **{f"train.{k}": 1 for k in ("steps", "batch_size", "window", "log_every", "checkpoint_every")},
    **{f"train.{k}": 0 for k in ("warmup_steps", "langevin_steps", "eval_every", "eval_episodes",
                                 "burn_in", "lr", "weight_decay", "langevin_noise")},
    **{f"inference.{k}": 1 for k in ("n_starts", "elite_episodes")},
    **{f"inference.{k}": 0 for k in ("ascent_steps", "langevin_steps", "langevin_noise",
                                     "replan_every", "local_dims", "local_radius")},
    **{f"online.{k}": 1 for k in ("stages", "n_envs", "collector_actors", "collect_shards",
                                  "eval_episodes")},
    "online.refit_lr_factor": 0,
    **{f"online.{k}": 0 for k in ("updates_per_stage", "explore_steps")},
}


def check_config(cfg: RunConfig) -> None:
    """Every choice field holds one of its choices, and numbers are in range: a bad value fails
    here, with the field and what it allows, before any work starts."""
    for section in SECTIONS:
        sub = getattr(cfg, section)
        for f in fields(sub):
            value, key = getattr(sub, f.name), f"{section}.{f.name}"
            allowed = choices(type(sub), f.name)
            if allowed and value not in allowed:
                raise ValueError(f"{key}={value!r}: expected one of {', '.join(map(str, allowed))}")
            low = _AT_LEAST.get(key)
            if low is not None and value is not None and value < low:
                raise ValueError(f"{key}={value!r}: must be at least {low}")
    from gac.inference.modes import get_mode  # the registry of modes (it imports this module)

    try:
        get_mode(cfg.inference.mode)
    except ValueError as exc:
        raise ValueError(f"inference.mode: {exc}") from None
    t, o = cfg.train, cfg.online
    for key, value in (("train.posterior_temperature", t.posterior_temperature),
                       ("train.grad_clip", t.grad_clip), ("train.langevin_step_size",
                                                          t.langevin_step_size)):
        if not value > 0:
            raise ValueError(f"{key}={value!r}: must be positive")
    if cfg.model.plan_dim and cfg.model.prior != "mlp":
        raise ValueError(f"model.plan_dim={cfg.model.plan_dim} needs model.prior=mlp (the only "
                         f"prior that maps a plan of another width to the tokens); got "
                         f"model.prior={cfg.model.prior}")
    if t.chain_grad == "shared" and t.param_window == "fresh":
        raise ValueError("train.param_window=fresh scores another window than the chains' in the "
                         "parameters' pass, and train.chain_grad=shared makes them one pass: "
                         "use train.chain_grad=exact")
    if t.chain_grad == "shared" and t.langevin_steps < 1:
        raise ValueError("train.chain_grad=shared takes the chains' last Langevin move from the "
                         "parameters' pass: it needs train.langevin_steps of at least 1")
    if not 0 <= t.ema_decay < 1:
        raise ValueError(f"train.ema_decay={t.ema_decay!r}: must be in [0, 1) (0: no average)")
    if o.env_steps < o.stages:
        raise ValueError(f"online.env_steps={o.env_steps} is below online.stages={o.stages}: "
                         f"each stage needs a budget of at least one environment step")
    if not 0 <= o.explore_share <= 1:
        raise ValueError(f"online.explore_share={o.explore_share!r}: must be in [0, 1]")
    if not 0 < cfg.inference.local_share <= 1:
        raise ValueError(f"inference.local_share={cfg.inference.local_share!r}: must be in (0, 1]")
    if not 0 < cfg.inference.stitch_gamma < 1:
        raise ValueError(f"inference.stitch_gamma={cfg.inference.stitch_gamma!r}: must be in "
                         f"(0, 1) (a discount below 1 makes the stitched values finite)")
    if not cfg.inference.stitch_radius > 0:
        raise ValueError(f"inference.stitch_radius={cfg.inference.stitch_radius!r}: must be "
                         f"positive")


def differences(a: RunConfig, b: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``SECTION.FIELD -> (value in a, value in b)`` for every field where two configs differ."""
    out: dict[str, tuple[Any, Any]] = {}
    if a.task != b.task:
        out["task"] = (a.task, b.task)
    for section in SECTIONS:
        x, y = getattr(a, section), getattr(b, section)
        for f in fields(x):
            if getattr(x, f.name) != getattr(y, f.name):
                out[f"{section}.{f.name}"] = (getattr(x, f.name), getattr(y, f.name))
    return out


def fingerprint(cfg: RunConfig, sections: tuple[str, ...] = ("data", "model", "train")) -> str:
    """A short hash of the fields of ``sections`` that differ from the defaults (benchmark run
    folders and logged rows carry it). A field added later, whose default keeps the earlier
    behaviour, leaves every fingerprint as it was."""
    diff = {k: b for k, (_, b) in differences(RunConfig(), cfg).items()
            if k.split(".")[0] in sections}
    return hashlib.sha1(json.dumps(diff, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _parse(raw: str, current: Any, item: str) -> Any:
    if raw.lower() in ("none", "null"):
        return None
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, tuple):
            return tuple(int(x) for x in raw.split(","))
        if current is None:  # optional numeric fields
            return float(raw) if any(c in raw for c in ".e") else int(raw)
    except ValueError:
        raise ValueError(f"override {item!r}: cannot parse {raw!r} as {type(current).__name__}") from None
    return raw


# Per-task presets: only what differs from the defaults. Sizes for locomotion follow LPT
# (3 layers, width 128, context 32-64 tokens); the mazes are small enough for a 2-core CPU.
# maze2d inference. umaze: the best-return plan among the tenth of the segments that start
# nearest, re-planned every 5 steps. Large (and medium until the paragraph below), where most
# segments' returns are 0 and such neighbours tie far from the goal: the best stitched value
# among the nearest 4%, re-planned every 15 steps (chosen on held-out evaluation seed 100,
# medium, the three benchmark models: mean return 41.7 against 28.5 every 5 steps; benchmark
# medium 2.8 against `local`'s -3.4, large -2.0 against -2.2; umaze 11.0 against 26.5:
# docs/design-notes.md). Large since the twenty-fifth session re-plans every 5 steps: held-out
# seeds 100-101 (96 episodes per model), its three exact-chain models of 16,000 updates, mean
# return 72.3 against 59.6 every 15 steps and 67.8 every 2, at least level on every model (0.8 /
# 189.6 / 26.6 against 0.8 / 165.9 / 12.1); 27 settings tried (stitch and local, every 2/5/15,
# 1% / 2% / 4%, position or whole state). The whole state among 2% every 15 (GAC-STATE) has a
# higher mean, 78.8, but from one model (2.9 / 11.0 / 222.5) and loses seed 1's: the nearness
# is kept, as no setting is ahead on every model.
# Medium: nearness on the whole state (velocity too) among the nearest 2%, every 25 steps: the
# best of 18 settings on held-out seed 100 for the three benchmark models of 16,000 updates
# (mean return 79.8 against 63.2), then on the benchmark 11.3 against 8.5, ahead on every seed.
# On large the same lost (1.4 against 12.9: the one seed that solves large falls from 39.0 to
# 4.3), so large keeps the position.
# Umaze since the twenty-first session (before: `local` among the nearest tenth by position,
# every 5 steps): `local` reaches the goal in every episode and then
# spends half of the remaining steps away from it (no segment of the data stays at a goal).
# `arrive` plays only segments that end where the best-return segments start, so once there
# it brakes and holds: held-out seed 100, seed-0 model, return 131.4 against 116.3 (every 2 /
# 10 steps: 130.0 / 119.7); benchmark 45.4 against 36.9, ahead on every seed. On medium,
# whose far starts the decoder follows less well, it lost (seeds 0-1: 12.2 / 1.4 against
# 17.6 / 10.9), so medium keeps `lookahead` (docs/design-notes.md, "holding at the goal").
_ARRIVE = {"mode": "arrive", "local_dims": 2, "replan_every": 5}
_STITCH = {"mode": "stitch", "local_share": 0.04, "local_dims": 2, "replan_every": 5}
# Medium since the twentieth session: the same candidates, each valued by its data return plus
# the stitched value where the end head says it ends from here (`lookahead`, data returns):
# held-out seed 100, the three 2,000-update end-head models, mean return 65.7 against 59.6
# (ahead on each); benchmark 9.5 against 6.5, ahead on every seed (docs/design-notes.md).
_STATE = {"mode": "lookahead", "lookahead_return": "data", "local_share": 0.02,
          "local_dims": 0, "replan_every": 25}

# Large since the twenty-fourth session: the exact two-step chains of locomotion, not one pass
# per update. 16,000 updates, the benchmark's files, seeds 0-2: 8.5 +- 14.2 (-2.9, 28.6, -0.1)
# against 2.0 +- 2.3 (5.1, 1.2, -0.4), and 10% BC's 4.6. Carried by seed 1, but for a reason the
# probes show: with exact chains some plans push back into the goal, where every plan of the
# one-pass models pushed out, and seed 1's policy stays in the goal's radius for 55% of the steps
# after arriving (one pass: 16%). About twice the time per update (docs/design-notes.md).
_EXACT_CHAINS = {"chain_grad": "exact", "langevin_steps": 2, "langevin_step_size": 0.3}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Mazes: the waypoint expert is Markov, and with any history in context a policy can read
    # its own past actions off the velocities and learn to copy them (copycat); a one-step
    # context avoids that. Many short windows beat a few long ones: consecutive steps are
    # nearly redundant, so more windows per update means more independent data.
    # No timestep embedding and a posterior tempered by 100: with either, plans (z, t) can
    # index a segment's per-step action noise, and the decoder then relies on them. On
    # pointmaze-large-goal seed 0 this took exploitation from 10.6 (timesteps, temperature 10) to
    # 25.7 (no timesteps) to 69.9 (no timesteps, temperature 100); docs/design-notes.md.
    **{f"pointmaze-{name}-goal": {
        "model": {"d_model": 64, "n_layers": 2, "context_steps": 1, "max_timestep": horizon,
                  "timestep_embedding": False, "prior": "mlp", "return_condition_s0": True},
        "train": {"steps": steps, "batch_size": batch, "window": 8, "lr": 1e-3,
                  "posterior_temperature": 100.0},
        "online": {"env_steps": 48 * horizon},  # 3 stages of 16 episodes
    } for name, horizon, steps, batch in (("umaze", 300, 2000, 128), ("medium", 600, 3000, 128),
                                          ("large", 800, 4000, 256))},
    # D4RL's maze2d. No goal in the observation, so a segment's actions are explained only by
    # where it is heading: the plan must carry that. Hence the exact posterior (temperature 1)
    # and chains without noise (MAP plans, as on locomotion), with the one-step context and no
    # timestep embedding of the goal-conditioned mazes. Plans of the segments that head for the
    # evaluation goal then drive there from other starts too (umaze, seed 0: 84% of episodes
    # reach it), but a segment's return mostly says where it *starts* (those leaving the goal
    # score 37 on average, those reaching it 11): the data's best plans leave the goal, and the
    # ascent finds nothing better. Ranking every bank plan by r(U(z0), s0) for this state
    # (`select`) helps where the head is right and fails where it scores plans with states they
    # never started from. So plans are chosen locally: among the tenth of the segments that
    # start nearest the current position, the one of highest data return (`local`), re-planned every
    # 5 steps, so that an episode is stitched from the data's segments and stays at the goal.
    # Measured on umaze seeds 0-2 (100k steps, 2,000 updates), held-out evaluation seed 100,
    # mean return: select re-planned every 50 steps 51.5, local every 5 steps 99.4; local on
    # all four entries (normalised) instead of the position: 22.7 (docs/design-notes.md).
    # The MLP state encoder: with a linear token of the 4-number state the decoder hardly fitted
    # the controller (medium, per-dimension action MSE 0.513 with the segment's own plan, a
    # constant 0.611, an MLP behaviour cloner 0.186); with it 0.344. Benchmark, 3 seeds: umaze
    # 28.6 (linear 29.8), medium -4.8 (linear -5.8), exploitation on medium -2.8 (-5.8).
    # One transformer pass per update (chain_grad=shared, one chain step of 0.3 * sqrt(2), the
    # two steps' displacement): 2.12x the updates/s, and, paired on one machine (3 seeds, the
    # benchmark's files), umaze 26.5 vs 21.7 and medium -3.4 vs -5.4 (stitch 0.3 vs -3.0):
    # the parameters then see each chain as an earlier window left it, as with param_window=fresh.
    # An end head (end_sigma 0.1: the plan must also say where its segment ends) on umaze and
    # medium: 3 seeds, the benchmark's files, umaze 2,000 updates 36.2 vs 26.5 (rerun on another
    # machine: 36.9), medium 16,000 updates 18.1 vs 11.3. Not on large: 0.8 and 10.6 vs 4.6 and
    # 50.5 on seeds 0-1 at 16,000 updates (docs/design-notes.md, "an end head").
    **{f"maze2d-{name}": {
        "model": {"d_model": 64, "n_layers": 2, "context_steps": 1, "max_timestep": horizon,
                  "timestep_embedding": False, "prior": "mlp", "return_condition_s0": True,
                  "state_encoder": "mlp", "end_sigma": end_sigma},
        "train": {"steps": steps, "batch_size": batch, "window": 8, "lr": 1e-3,
                  "posterior_temperature": 1.0, "langevin_noise": 0.0,
                  "chain_grad": "shared", "langevin_steps": 1, "langevin_step_size": 0.424,
                  **(_EXACT_CHAINS if name == "large" else {})},
        "inference": inference,
        # 3 stages of 16 episodes; the bank keeps the offline goal segments only (maze2d-medium,
        # 3 seeds, 7,200 steps: gain without exploration -2.0 against -8.7 with every episode's
        # plans, with automatic exploration -3.4 against -4.1; docs/design-notes.md).
        # Medium collects without exploration: its prior-sampled exploring plans return 0-9 per
        # stage, the policy's own 27-115; 3 seeds, 7,200 steps, the `lookahead` preset: gain
        # +5.4 against the automatic Delta-y's -0.6 and the refit-only control's +2.0, ahead
        # of both on every seed (at 3 x 2,400 refit updates +5.6 against the control's -0.6).
        # On umaze (`arrive`) no exploration lost (-3.7 against +-0.1): it keeps the default.
        "online": {"env_steps": 48 * horizon, "plan_bank": "offline",
                   **({"exploration": False} if name == "medium" else {})},
    } for name, horizon, steps, batch, inference, end_sigma in (
        ("umaze", 300, 2000, 128, _ARRIVE, 0.1), ("medium", 600, 3000, 128, _STATE, 0.1),
        ("large", 800, 4000, 256, _STITCH, 0.0))},
    # Locomotion: LPT's width and depth with a 16-step context, and 32 windows of 16 steps per
    # update without burn-in (the first steps of a window see a shorter history, as DT's do):
    # with the exact burn-in of 3 x 15 steps an update costs 3x more on CPU. Measured on
    # hopper-medium (800 updates, seed 0, 10 episodes): this 35.0, a one-step context 33.9.
    # As on the mazes, no timestep embedding and temperature 100: on hopper-medium-replay
    # (1,000 updates, seed 0, 10 episodes) 29.5, against 23.6 with timesteps at temperature 1.
    # lr 1e-3 (the mazes' rate): at 1,000 updates 3e-4 had barely started on halfcheetah-medium
    # (seed 0, 10 episodes: 7.9 -> 29.1; walker2d-medium 31.7 -> 32.6).
    # Chains without noise (MAP plans) and a sharp return likelihood (sigma_y 0.1): with LPT's
    # noisy chains the decoder ignored its plan (GAC was a transformer behaviour cloner); MAP
    # plans are consistent per trajectory and carry its return, so exploitation can steer.
    # 5 seeds, 1,000 updates, MAP vs LPT's chains: halfcheetah-medium 47.9 vs 15.4,
    # halfcheetah-medium-replay 19.4 vs 9.3, average over the six datasets 32.5 vs 24.9.
    # A little noise (x0.1) looked better on seeds 0-2 but did not hold on seeds 3-4
    # (docs/design-notes.md, benchmarks/plan_usage.py).
    # The exact two-step chains, not the mazes' one pass per update (chain_grad=shared, one
    # step of 0.424; half the time per step): 3 seeds, 1,000 updates, the one pass was level or
    # ahead on hopper and walker2d (e.g. walker2d-medium-replay 30.0 vs 23.4) but halfcheetah
    # collapsed (halfcheetah-medium 16.9 vs 46.5, halfcheetah-medium-replay 10.4 vs 21.3).
    # Online, hopper and walker2d collect without exploration: medium-replay, 3 seeds, 12,000
    # environment steps, final 32.5 vs 27.0 (hopper) and 27.5 vs 23.4 (walker2d) against the
    # automatic delta-y (README, offline-to-online). halfcheetah online is not measured.
    # walker2d's refits keep the offline plans where they are: walker2d-medium-replay, 3 seeds,
    # final 31.4 against 27.5 with moving plans, ahead on every seed; without online data the
    # moving plans alone lose 13.9 points, fixed ones none (docs/design-notes.md).
    **{body: {
        "model": {"d_model": 128, "n_layers": 3, "context_steps": 16, "max_timestep": 1000,
                  "timestep_embedding": False, "return_sigma": 0.1},
        "train": {"steps": 2000, "batch_size": 32, "window": 16, "burn_in": 0, "lr": 1e-3,
                  "posterior_temperature": 100.0, "langevin_noise": 0.0},
        **({"online": {"exploration": False,
                       **({"offline_plans": "fixed"} if body == "walker2d" else {})}}
           if body != "halfcheetah" else {}),
    } for body in ("hopper", "halfcheetah", "walker2d")},
}


def preset(task: str) -> RunConfig:
    """The config for a task name: the preset its task names (``hopper-medium`` uses
    ``hopper``, ``maze2d-umaze-dense`` uses ``maze2d-umaze``), else the defaults."""
    from gac.tasks import get_task

    try:
        key = get_task(task).preset_key
    except KeyError:
        key = task
    values = PRESETS.get(key, {})
    cfg = RunConfig.from_dict({"task": task, **values})
    return cfg
