"""Offline-to-online fine-tuning: collect with optimistic plans, label with returns, refit.

Each stage collects episodes whose plans are sampled from p(z0 | y+) with y+ = y_ref + delta_y
(exploration; a share may use exploitation plans), labels every episode with its total return
only, appends it to the trajectory store (the offline data stay), grows the persistent chains,
continues maximum-likelihood training, and evaluates the exploitation policy. The budget is a
fixed number of environment steps, split evenly over the stages.

A run saves after every collected group of episodes and during the refit, so a killed run resumes
mid-stage without losing a collected episode.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from gac.collectors import Collector, make_collector, split_group
from gac.config import OnlineConfig
from gac.data.store import Episode, TrajectoryStore
from gac.evaluation.evaluate import evaluate
from gac.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gac.train.offline import Trainer

# Settings a resumed online run may change (see offline.RESUMABLE): where episodes are played
# (local and Ray collection give identical episodes), how often it logs or saves, threads,
# device. Anything else (the budget, the stages, the exploration rule, the refit) would change
# the plan the saved stages were run under, so a resume with it changed is refused.
RESUMABLE_ONLINE = ("train.log_every", "train.checkpoint_every", "train.eval_every",
                    "train.eval_episodes", "train.threads", "train.device", "online.collector",
                    "online.collector_actors")


class DeltaYRule:
    """The optimism delta_y: fixed, or automatic.

    Automatic (gac's rule, no per-task constant): delta_y = kappa * std(returns seen so far), so it
    has the task's return scale; kappa follows a success rule in the spirit of Rechenberg's 1/5
    rule: if more than ``target_success`` of the exploration episodes reach y_ref, the optimism
    is too timid and kappa grows by ``kappa_factor``; otherwise it shrinks by the same factor.
    """

    def __init__(self, cfg: OnlineConfig):
        self.fixed = cfg.delta_y
        self.kappa = cfg.kappa_init
        self.factor = cfg.kappa_factor
        self.target = cfg.target_success

    def delta(self, returns_seen: np.ndarray) -> float:
        if self.fixed is not None:
            return float(self.fixed)
        return float(self.kappa * np.std(returns_seen))

    def update(self, explore_returns: np.ndarray, y_ref: float) -> float:
        """Adapt to one stage's exploration outcomes; returns the success rate."""
        if len(explore_returns) == 0:
            return float("nan")
        success = float(np.mean(np.asarray(explore_returns) >= y_ref))
        if self.fixed is None:
            self.kappa *= self.factor if success > self.target else 1.0 / self.factor
        return success

    def state_dict(self) -> dict[str, float]:
        return {"kappa": self.kappa}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.kappa = float(state["kappa"])


def reference_return(store: TrajectoryStore, n_offline: int, quantile: float,
                     played: np.ndarray | None = None, pool: str = "episodes"
                     ) -> tuple[float, np.ndarray]:
    """y_ref and the pool of returns it comes from.

    ``pool="episodes"`` (default): the returns of every episode played on the evaluation task so
    far, ``played`` (the evaluation episodes, the offline policy's first among them) and the
    episodes collected online: the scale of an evaluation episode from the first stage on.
    ``pool="data"`` (the earlier rule): the collected episodes if any, else the offline data's
    trajectories, whose returns can live on another scale (maze2d's goal segments are a fraction
    of an episode long)."""
    online = store.returns[n_offline:]
    if pool == "episodes":
        seen = np.concatenate([np.asarray(played if played is not None else [], np.float64),
                               online])
        if len(seen) == 0:
            raise ValueError("online.ref_pool=episodes needs the returns of played episodes; "
                             "none yet (the offline policy is evaluated before stage 1)")
    elif pool == "data":
        seen = online if len(online) else store.returns[:n_offline]
    else:
        raise ValueError(f"online.ref_pool={pool!r}: expected episodes or data")
    return float(np.quantile(seen, quantile)), seen


class OnlineRun:
    """Stages of collection -> store -> refit -> evaluation, resumable at any point."""

    def __init__(self, trainer: Trainer, task: Any, run_dir: str | Path,
                 ref: tuple[float, float] | None, collector: Collector | None = None):
        """``collector`` plays the episodes (default: the one ``online.collector`` names)."""
        self.trainer = trainer
        self.cfg: OnlineConfig = trainer.cfg.online
        if self.cfg.online_share is not None and not 0 < self.cfg.online_share < 1:
            raise ValueError(f"online.online_share must be in (0, 1), got {self.cfg.online_share}")
        self.task = task
        self.run_dir = Path(run_dir)
        self.ref = ref
        self.n_offline = trainer.store.num_episodes
        if self.cfg.plan_bank == "offline":
            trainer.bank_size = self.n_offline
        if self.cfg.offline_plans == "fixed":
            trainer.fixed_chains = self.n_offline
        self.rule = DeltaYRule(self.cfg)
        self.stage = 0  # stages finished
        self.stage_steps = 0  # environment steps collected in the current stage
        self.phase = "collect"  # collect -> refit -> evaluate, per stage
        self.stage_episodes = 0  # episodes collected in the current stage
        self.stage_explore: list[float] = []  # returns of this stage's exploration episodes
        self.refit_until: int | None = None  # update count that ends the current refit
        self.last_targets = (float("nan"), float("nan"))  # (y_ref, y+) of the latest group
        self.records: list[dict[str, float]] = []
        # Returns of the evaluation episodes played so far (stage 0's: the offline policy's):
        # with the collected episodes, the pool y_ref comes from (``online.ref_pool``).
        self.played: list[float] = []
        self.collector = collector or make_collector(task, self.cfg, trainer.cfg.model)

    @property
    def stage_budget(self) -> int:
        return self.cfg.env_steps // self.cfg.stages

    @property
    def env_steps(self) -> int:
        """Online environment steps used so far."""
        return sum(int(r.get("collected_steps", 0)) for r in self.records) + self.stage_steps

    # ----------------------------------------------------------------- one stage's parts
    def collect_group(self) -> list[Episode]:
        """One group of episodes (at most one per environment, within the stage budget)."""
        store = self.trainer.store
        y_ref, pool = reference_return(store, self.n_offline, self.cfg.ref_quantile,
                                       np.array(self.played), self.cfg.ref_pool)
        y_plus = y_ref + self.rule.delta(pool)
        remaining = self.stage_budget - self.stage_steps
        n = max(1, min(self.cfg.n_envs, math.ceil(remaining / self.task.horizon)))
        n_explore = round(self.cfg.explore_share * n) if self.cfg.exploration else 0
        seed = 1_000_003 * (self.trainer.cfg.train.seed + 1) + 7919 * self.stage + self.stage_steps
        shards = split_group(n, self.cfg.collect_shards, n_explore)
        outs = self.collector.collect(self.trainer.acting_model, self.trainer.plan_bank,
                                      self.trainer.cfg.inference, self.cfg, y_plus, seed, shards)
        returns = np.concatenate([o["returns"] for o in outs])
        self.stage_explore += [float(r) for r in returns[:n_explore]]
        self.last_targets = (y_ref, y_plus)
        return [e for o in outs for e in o["episodes"]]

    def add(self, episodes: list[Episode]) -> None:
        """Collected episodes join the training data, with ``online.online_share`` of the
        trained steps."""
        self.trainer.add_episodes(episodes, share=self.cfg.online_share)
        self.stage_steps += sum(len(e) for e in episodes)
        self.stage_episodes += len(episodes)

    def evaluate(self, seed: int = 0) -> dict[str, float]:
        icfg = self.trainer.cfg.inference
        res = evaluate(self.trainer.acting_model, self.task, self.cfg.eval_episodes, [seed], icfg,
                       self.ref, n_envs=self.cfg.n_envs, bank=self.trainer.plan_bank)
        self.played += [float(r) for r in res.returns.ravel()]
        s = res.summary()
        return {"score": s["score_mean"], "score_std_episodes": s["score_std_episodes"],
                "return": s["return_mean"]}

    # ----------------------------------------------------------------- the loop
    def run(self, progress: bool = True, log=print) -> list[dict[str, float]]:
        if not self.records:
            t0 = time.time()
            self.records.append({"stage": 0, "env_steps": 0, **self.evaluate(),
                                 "wall_s": time.time() - t0})
            log(f"stage 0 (offline): score {self.records[0]['score']:.1f}")
            self.save()
        while self.stage < self.cfg.stages:
            t0 = time.time()
            if self.phase == "collect":
                while self.stage_steps < self.stage_budget:
                    self.add(self.collect_group())
                    self.save()  # no collected episode is lost
                self.phase = "refit"
                self.save()
            if self.phase == "refit":
                if self.refit_until is None:
                    self.refit_until = self.trainer.step + self.cfg.updates_per_stage
                # Periodic checkpoints during the refit keep the online state.
                self.trainer.train(steps=self.refit_until, progress=progress,
                                   on_checkpoint=self.save)
                self.phase = "evaluate"
                self.save()
            y_ref, y_plus = self.last_targets
            collected = self.trainer.store.returns[-self.stage_episodes:]
            explored = np.array(self.stage_explore)
            success = self.rule.update(np.array(self.stage_explore), y_ref)
            record = {"stage": self.stage + 1, "collected_steps": self.stage_steps,
                      "collected_episodes": self.stage_episodes,
                      "collected_return": float(np.mean(collected)),
                      "collected_return_max": float(np.max(collected)),
                      "explore_return": float(explored.mean()) if len(explored) else float("nan"),
                      "y_ref": y_ref, "y_plus": y_plus, "explore_success": success,
                      "kappa": self.rule.kappa, "env_steps": self.env_steps, **self.evaluate(),
                      "wall_s": time.time() - t0}
            self.records.append(record)
            log(f"stage {record['stage']}: collected {self.stage_steps} steps, y_ref "
                f"{y_ref:.2f}, y+ {y_plus:.2f}; returns collected: mean "
                f"{record['collected_return']:.2f} (exploring {record['explore_return']:.2f}), "
                f"max {record['collected_return_max']:.2f}; score {record['score']:.1f} "
                f"(offline {self.records[0]['score']:.1f})")
            self.stage += 1
            self.stage_steps = self.stage_episodes = 0
            self.stage_explore = []
            self.phase = "collect"
            self.refit_until = None
            self.save()
        return self.records

    def close(self) -> None:
        """Release the collector's environments (and Ray actors, with their CPUs)."""
        self.collector.close()

    # ----------------------------------------------------------------- state
    def save(self) -> None:
        n = self.n_offline
        episodes = self.trainer.store.tail(n)  # the online episodes
        state = self.trainer.state_checked()
        state["online"] = {
            "stage": self.stage, "stage_steps": self.stage_steps, "phase": self.phase,
            "stage_episodes": self.stage_episodes, "stage_explore": self.stage_explore,
            "records": self.records, "rule": self.rule.state_dict(),
            "n_offline": n, "refit_until": self.refit_until,
            "last_targets": list(self.last_targets), "episodes": episodes,
            "played": self.played,
        }
        save_checkpoint(state, self.run_dir / "checkpoint.pt")

    def load(self, path: str | Path) -> None:
        state = load_checkpoint(path, task=self.trainer.cfg.task)
        online = state.get("online")
        if online is None:
            raise CheckpointError(f"{path}: not an online run's checkpoint")
        try:
            eps = online["episodes"]
            if eps is not None and self.trainer.store.num_episodes == self.n_offline:
                self.trainer.add_episodes(TrajectoryStore.episodes_from_tail(eps),
                                          share=self.cfg.online_share)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"{path}: its online episodes cannot be read ({exc!r})") from exc
        self.trainer.load(path, RESUMABLE_ONLINE)  # model, optimiser, chains (grown), RNGs, step
        try:
            self.stage, self.stage_steps = online["stage"], online["stage_steps"]
            self.stage_episodes = online["stage_episodes"]
            self.phase, self.stage_explore = online["phase"], list(online["stage_explore"])
            self.records = list(online["records"])
            self.rule.load_state_dict(online["rule"])
            self.refit_until = online["refit_until"]
            self.last_targets = tuple(online["last_targets"])
            self.played = [float(r) for r in online.get("played", [])]  # older runs: none
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: incomplete online state ({exc!r})") from exc
