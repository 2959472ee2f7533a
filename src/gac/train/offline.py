"""Offline maximum-likelihood training of the GAC model with persistent Langevin chains.

One update: sample sub-trajectory windows (length-weighted), move each window's persistent chain
z0 a few Langevin steps under the posterior p(z0 | tau, y) (the window estimates the whole
trajectory's energy without bias), write the chains back, then take an AdamW step on
action NLL + lambda_y * return NLL at the new z0. The loop is written once here; the online
stages (later) reuse ``Trainer.update`` on a growing store.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gac.atomic import atomic_write, write_text
from gac.config import RunConfig, check_config, differences
from gac.data.store import DataError, Episode, TrajectoryStore
from gac.inference import PlanBank, sample_posterior
from gac.inference.langevin import standard_normal
from gac.model import GACModel
from gac.train.chains import PosteriorChains
from gac.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

# Settings that a resumed offline run may change: they do not alter what it computes (how often
# it logs, evaluates or saves; threads; device), concern later stages (inference, online), or are
# meant to change (train.steps extends a run; the schedule then follows the new length). They are
# applied, and config.json records them; a resume with any other setting changed is refused,
# naming it, because the checkpoint's optimiser, RNG states and chains would silently override it.
RESUMABLE = ("train.steps", "train.log_every", "train.eval_every", "train.eval_episodes",
             "train.checkpoint_every", "train.threads", "train.device", "inference.", "online.")


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient, chain or weight: training stops, nothing more is saved."""


def build_model(cfg: RunConfig, store: TrajectoryStore, return_scale: float) -> GACModel:
    """A model shaped by the data, with the data's normalisation stored inside it."""
    mcfg = replace(cfg.model, obs_dim=store.obs_dim, act_dim=store.act_dim)
    cfg.model = mcfg
    model = GACModel(mcfg)
    mean, std = store.obs_stats()
    model.set_normalisation(mean, std, return_scale)
    return model


def check_fits(cfg: RunConfig, store: TrajectoryStore) -> None:
    """Fail early, with the reason, when a config cannot be trained on this data."""
    m = cfg.model
    if m.obs_dim and m.obs_dim != store.obs_dim:
        raise DataError(f"config model.obs_dim={m.obs_dim} but the data has obs_dim={store.obs_dim}")
    if m.act_dim and m.act_dim != store.act_dim:
        raise DataError(f"config model.act_dim={m.act_dim} but the data has act_dim={store.act_dim}")
    check_config(cfg)
    if int(store.lengths.max()) > m.max_timestep:
        raise DataError(f"the data has episodes of {int(store.lengths.max())} steps but "
                        f"model.max_timestep={m.max_timestep}; raise it (--set model.max_timestep=N)")


class Trainer:
    """Owns the model, optimiser, schedule, chains and every RNG of one training run."""

    def __init__(self, cfg: RunConfig, store: TrajectoryStore, run_dir: str | Path | None = None,
                 return_scale: float = 1.0):
        self.cfg = cfg
        self.store = store
        self.run_dir = Path(run_dir) if run_dir else None
        t = cfg.train
        torch.set_num_threads(t.threads or 1)  # None: one thread, reproducible (config.py)
        check_fits(cfg, store)
        torch.manual_seed(t.seed)  # dropout and initialisation
        self.device = _device(t.device)
        self.model = build_model(cfg, store, return_scale).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr,
                                           weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.gen = torch.Generator().manual_seed(t.seed + 1)  # Langevin noise, chain starts
        self.rng = np.random.default_rng(t.seed + 2)  # batch sampling
        self.chains = PosteriorChains(store.num_episodes, *self.model.latent_shape, self.gen)
        # History of the model's receptive field (L banded layers see L*(K-1) steps back) makes
        # the window's likelihood exactly the full-trajectory one the cached rollout computes.
        self.burn_in = t.burn_in if t.burn_in is not None else self.model.receptive_field
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.n_initial = store.num_episodes  # episodes after it were added by add_episodes
        self.bank_size: int | None = None  # plans the bank offers: the first N (None: all)
        self.episode_weights: np.ndarray | None = None  # sampling weights (None: by length)
        self.fixed_chains = 0  # chains 0..fixed_chains-1 are not moved by updates
        # train.ema_decay: the moving average of the weights, a model of its own that only plays
        self.averaged = (copy.deepcopy(self.model).eval().requires_grad_(False)
                         if t.ema_decay else None)

    @property
    def acting_model(self) -> GACModel:
        """The weights that evaluation and online collection play (``inference.weights``)."""
        if self.averaged is not None and self.cfg.inference.weights == "averaged":
            return self.averaged
        return self.model

    @torch.no_grad()
    def _update_average(self) -> None:
        """Move the averaged weights towards the trained ones (``train.ema_decay``); buffers
        (the data's normalisation) are copied."""
        decay = min(self.cfg.train.ema_decay, (1 + self.step) / (10 + self.step))
        avg = list(self.averaged.parameters())
        torch._foreach_lerp_(avg, [p.detach() for p in self.model.parameters()], 1.0 - decay)
        for a, b in zip(self.averaged.buffers(), self.model.buffers(), strict=True):
            a.copy_(b)

    @property
    def plan_bank(self) -> PlanBank:
        """The training episodes' plans (the chains, by reference), returns, first and last
        observations and lengths: what the elite, refine, select, local and stitch modes
        choose from."""
        bank = PlanBank(self.chains.z, self.store.returns, self.first_observations(),
                        self.last_observations(), self.store.lengths)
        return bank if self.bank_size is None else bank.head(self.bank_size)

    def first_observations(self) -> np.ndarray:
        """Each episode's first observation (N, obs_dim): where its plan starts."""
        return self.store.observations[self.store.starts]

    def last_observations(self) -> np.ndarray:
        """Each episode's last observation (N, obs_dim): where its plan ends."""
        return self.store.observations[self.store.starts + self.store.lengths - 1]

    def add_episodes(self, episodes: list[Episode], share: float | None = None) -> None:
        """Append episodes to the store, each with a fresh chain (from the prior).

        ``share``: the share of trained steps drawn from all the episodes added so far, the
        offline/online mixing ratio (None: in proportion to their steps, no reweighting)."""
        self.store.append(episodes)
        self.chains.grow(len(episodes), self.gen)
        self.episode_weights = None
        n = self.n_initial
        if share is not None and self.store.num_episodes > n:
            if not 0 < share < 1:
                raise ValueError(f"the share of added episodes must be in (0, 1), got {share}")
            lengths = self.store.lengths.astype(np.float64)
            weights = np.ones(self.store.num_episodes)
            weights[n:] = share / (1 - share) * lengths[:n].sum() / lengths[n:].sum()
            self.episode_weights = weights

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 10% of the peak; after ``train.steps`` (the
        online refits), ``online.refit_lr_factor``."""
        t = self.cfg.train
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if step >= t.steps:
            return self.cfg.online.refit_lr_factor
        progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    def batch(self, episodes: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """A batch of training windows (of the ``episodes`` given, else of sampled ones)."""
        t = self.cfg.train
        arrays = self.store.sample_windows(self.rng, t.batch_size, t.window, self.burn_in,
                                           self.episode_weights, episodes)
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
                for k, v in arrays.items()}

    def update(self) -> dict[str, float]:
        t = self.cfg.train
        batch = self.batch()
        idx = batch["episode_index"]
        t0 = time.perf_counter()
        chain_batch = batch
        if t.posterior_temperature != 1.0:
            chain_batch = {**batch, "traj_scale": batch["traj_scale"] / t.posterior_temperature}
        shared = t.chain_grad == "shared"
        z_start = self.chains.get(idx, self.device)
        z0 = sample_posterior(self.model, z_start, chain_batch,
                              n_steps=t.langevin_steps - shared, step_size=t.langevin_step_size,
                              generator=self.gen, noise=t.langevin_noise)
        fixed = (idx < self.fixed_chains).view(-1, 1, 1) if self.fixed_chains else None
        if fixed is not None:
            z0 = torch.where(fixed, z_start, z0)
        t1 = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if shared:
            z_new, action_loss, return_loss = self._shared_pass(z0, batch, chain_batch)
            loss = action_loss + t.return_weight * return_loss
            z0 = z_new if fixed is None else torch.where(fixed, z_start, z_new)
        self._check_finite("chains (posterior plans z0)", z0)
        self.chains.set(idx, z0)
        if not shared:
            if t.param_window == "fresh":  # the same trajectories, another window of each
                batch = self.batch(batch["episode_index"].cpu().numpy())
            z = self.model.prior(z0)
            action_loss = self.model.step_action_nll(batch, z)
            return_loss = self.model.outcome_nll(z, batch).mean()
            loss = action_loss + t.return_weight * return_loss
            self._check_finite("action NLL", action_loss)
            self._check_finite("return NLL", return_loss)
            loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self._check_finite("gradient norm", grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        if self.averaged is not None:
            self._update_average()
        self.step += 1
        t2 = time.perf_counter()
        return {
            "step": self.step,
            "loss": loss.item(),
            "action_nll": action_loss.item(),
            "return_nll": return_loss.item(),
            "grad_norm": float(grad_norm),
            "lr": self.scheduler.get_last_lr()[0],
            "langevin_s": t1 - t0,
            "update_s": t2 - t0,
        }

    def _shared_pass(self, z0: torch.Tensor, batch: dict[str, torch.Tensor],
                     chain_batch: dict[str, torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``train.chain_grad=shared``: one forward and backward through the transformer at the
        chains z0 gives the parameters' gradient of the loss (accumulated in ``.grad``) and the
        chains' last Langevin move; returns (moved chains, action loss, return loss).

        Windows are independent, so the per-window gradients of the action NLL with respect to
        the transformer's input z come out of the loss's backward, each scaled by that window's
        weight in the loss; rescaled to the posterior energy's weights (traj_scale) they carry
        the energy's gradient back through the (small) prior network to z0."""
        t = self.cfg.train
        z0 = z0.detach().requires_grad_(True)
        z = self.model.prior(z0)
        z_in = z.detach().requires_grad_(True)  # the transformer's plan input
        per_window = self.model.action_nll(batch["obs"], batch["actions"], batch["timesteps"],
                                           z_in, batch["loss_mask"])
        weight = 1.0 / (batch["loss_mask"].sum(1).clamp(min=1) * len(per_window))
        action_loss = (per_window * weight).sum()
        returns = self.model.outcome_nll(z, batch)
        return_loss = returns.mean()
        self._check_finite("action NLL", action_loss)
        self._check_finite("return NLL", return_loss)
        action_loss.backward()  # the transformer's parameters, and d(loss)/d(z_in)
        g_loss = z_in.grad
        g_energy = g_loss * (chain_batch["traj_scale"].to(weight) / weight).view(-1, 1, 1)
        (g0,) = torch.autograd.grad((z, returns.sum()), (z0,), (g_energy, None),
                                    retain_graph=True)
        torch.autograd.backward((z, t.return_weight * return_loss), (g_loss, None))
        step = t.langevin_step_size
        z_new = z0.detach() - 0.5 * step**2 * (z0.detach() + g0)  # energy: 1/2|z0|^2 + ...
        if t.langevin_noise:
            z_new = z_new + float(t.langevin_noise) * step * standard_normal(z_new, self.gen)
        return z_new, action_loss.detach(), return_loss.detach()

    def _check_finite(self, term: str, value: torch.Tensor) -> None:
        if not bool(torch.isfinite(value).all()):
            raise TrainingDiverged(self._diverged(f"the {term} is not finite"))

    def _diverged(self, what: str) -> str:
        ckpt = self.run_dir / "checkpoint.pt" if self.run_dir else None
        kept = (f"; the last good checkpoint {ckpt} is kept" if ckpt and ckpt.exists()
                else "; no checkpoint was written")
        return (f"training diverged at step {self.step + 1}: {what}{kept}. Lower train.lr "
                f"(now {self.cfg.train.lr:g}) or check the data")

    # ----------------------------------------------------------------- the loop
    def train(self, steps: int | None = None, progress: bool = True, on_eval: Any = None,
              on_checkpoint: Callable[[], Any] | None = None) -> list[dict[str, float]]:
        """Run until ``steps`` total updates (default: the config's), logging and checkpointing.

        ``on_eval(trainer) -> dict`` is called every ``train.eval_every`` steps and at the end;
        its numbers are logged with the step. ``on_checkpoint()`` writes the periodic
        checkpoints (default: this trainer's state to ``RUN_DIR/checkpoint.pt``; an online run
        writes its own, bigger state).
        """
        if on_checkpoint is None:
            def on_checkpoint() -> None:
                self.save(self.run_dir / "checkpoint.pt")

        t = self.cfg.train
        total = steps if steps is not None else t.steps
        logger = _Logger(self.run_dir) if self.run_dir else None
        bar = tqdm(total=total, initial=self.step, desc="training", unit="upd",
                   disable=not progress, mininterval=1.0)
        window: list[dict[str, float]] = []
        try:
            while self.step < total:
                metrics = self.update()
                window.append(metrics)
                bar.update(1)
                last = self.step == total
                save = self.run_dir is not None and (self.step % t.checkpoint_every == 0 or last)
                if self.step % t.log_every == 0 or last:
                    row = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
                    row["step"] = self.step
                    window = []
                    self.history.append(row)
                    if on_eval and ((t.eval_every and self.step % t.eval_every == 0) or last):
                        if save:  # the model is safe before it is evaluated
                            on_checkpoint()
                        row.update(on_eval(self))
                    bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
                    if logger:
                        logger.log(row)
                if save:
                    on_checkpoint()
        finally:
            bar.close()
            if logger:
                logger.close()
        return self.history

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            **({"averaged_model": self.averaged.state_dict()} if self.averaged is not None else {}),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "chains": self.chains.state_dict(),
            "episode_returns": np.asarray(self.store.returns, dtype=np.float64).copy(),
            "episode_first_obs": np.array(self.first_observations(), dtype=np.float32),
            "episode_last_obs": np.array(self.last_observations(), dtype=np.float32),
            "episode_lengths": np.asarray(self.store.lengths, dtype=np.int64).copy(),
            "plan_bank_size": self.bank_size,
            "rng": {
                "torch": torch.get_rng_state(),
                "langevin": self.gen.get_state(),
                "numpy": self.rng.bit_generator.state,
            },
            "history": self.history,
            "data": {"episodes": self.store.num_episodes, "steps": self.store.num_steps,
                     "obs_dim": self.store.obs_dim, "act_dim": self.store.act_dim},
            "metadata": {**self.store.metadata, "return_max": float(self.store.returns.max())},
        }

    def state_checked(self) -> dict[str, Any]:
        """``state()``, refusing to hand out non-finite weights (they would replace the last
        good checkpoint)."""
        models = {"": self.model, "averaged ": self.averaged}
        bad = [f"{name}{k}" for name, m in models.items() if m is not None
               for k, v in m.state_dict().items()
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise TrainingDiverged(self._diverged(f"the weights {', '.join(bad[:3])} are not "
                                                  f"finite after the update"))
        return self.state()

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.state_checked(), path)

    def load(self, path: str | Path, resumable: tuple[str, ...] | None = RESUMABLE) -> None:
        """Resume from a checkpoint of this run: the next update is the one an uninterrupted
        run would have made. Settings outside ``resumable`` (``SECTION.FIELD`` names, or
        ``SECTION.`` prefixes) must be those the checkpoint was trained with.

        ``resumable=None``: a new run (fine-tuning) starting from the checkpoint's weights,
        chains and optimiser state; only the model must match, and this run's optimiser
        settings (train.lr, train.weight_decay) replace the saved ones."""
        state = load_checkpoint(path, task=self.cfg.task)
        try:
            data = state["data"]
            saved = RunConfig.from_dict(state["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: incomplete or damaged checkpoint ({exc!r})") from exc
        if (data["obs_dim"], data["act_dim"]) != (self.store.obs_dim, self.store.act_dim) or \
                data["episodes"] > self.store.num_episodes:
            raise CheckpointError(f"{path}: checkpoint was trained on data with {data}, which "
                                  f"does not match this dataset ({self.store.num_episodes} "
                                  f"episodes, obs_dim {self.store.obs_dim})")
        if saved.model != self.cfg.model:
            raise CheckpointError(f"{path}: model config differs from this run's "
                                  f"(saved {saved.model}, now {self.cfg.model})")
        if resumable is not None:
            changed = {k: v for k, v in differences(saved, self.cfg).items()
                       if not any(k == r or (r.endswith(".") and k.startswith(r))
                                  for r in resumable)}
            if changed:
                listed = "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now"
                                   for k, (a, b) in changed.items())
                raise CheckpointError(
                    f"{path}: cannot resume with changed settings, which the checkpoint's "
                    f"state would override ({listed}); resume with the checkpoint's settings, "
                    f"or start a new run in another run directory")
        try:
            self.model.load_state_dict(state["model"])
            if self.averaged is not None:  # a checkpoint without an average starts one here
                self.averaged.load_state_dict(state.get("averaged_model", state["model"]))
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.chains.load_state_dict(state["chains"])
            torch.set_rng_state(state["rng"]["torch"])
            self.gen.set_state(state["rng"]["langevin"])
            self.rng.bit_generator.state = state["rng"]["numpy"]
            self.step = int(state["step"])
        except (KeyError, RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"{path}: cannot be loaded into this run ({exc!r})") from exc
        self.history = list(state.get("history", []))
        if resumable is None:
            self._apply_optimiser_settings()

    def _apply_optimiser_settings(self) -> None:
        """The config's learning rate and weight decay, in place of a loaded optimiser's."""
        t = self.cfg.train
        self.scheduler.base_lrs = [t.lr] * len(self.optimizer.param_groups)
        factor = self._lr_factor(self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group.update(initial_lr=t.lr, lr=t.lr * factor, weight_decay=t.weight_decay)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def _device(name: str) -> torch.device:
    """``train.device`` as a torch device, with a clear error where it is not available."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"train.device={name!r}: not a device name ({exc}); use cpu, cuda "
                         f"or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r}: CUDA is not available here (torch "
                         f"{torch.__version__}, CUDA build {torch.version.cuda}); use "
                         f"train.device=cpu")
    if device.type == "cuda" and device.index is not None and \
            device.index >= torch.cuda.device_count():
        raise ValueError(f"train.device={name!r}: only {torch.cuda.device_count()} CUDA "
                         f"device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"train.device={name!r}: MPS is not available here; use train.device=cpu")
    return device


class _Logger:
    """CSV (always) and TensorBoard (when installed) logs in the run directory."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = run_dir / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        if self.csv_path.exists():  # a resumed run keeps its earlier rows
            with open(self.csv_path) as f:
                self.rows = [{k: float(v) for k, v in r.items() if v != ""}
                             for r in csv.DictReader(f)]
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except ImportError:  # pragma: no cover - tensorboard is a declared dependency
            self.tb = None

    def log(self, row: dict[str, float]) -> None:
        self.rows = [r for r in self.rows if r["step"] < row["step"]] + [row]
        keys = sorted({k for r in self.rows for k in r}, key=lambda k: (k != "step", k))
        with atomic_write(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        if self.tb:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(k, v, int(row["step"]))

    def close(self) -> None:
        if self.tb:
            self.tb.close()


def write_config(cfg: RunConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
