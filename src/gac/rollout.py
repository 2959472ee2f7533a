"""Batched policy execution: many environments stepped together, one forward pass per step.

Environments are stepped in-process (on 2 cores, subprocess vector envs are slower than one
process). The GAC policy picks one latent plan per episode, then decodes actions step by step
with cached attention keys/values, so each step adds one token instead of re-encoding history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gac.config import InferenceConfig
from gac.data.store import Episode
from gac.inference import PlanBank, Planner, make_planner
from gac.model import GACModel


def make_envs(make_env: Callable[[], Any], n: int) -> list[Any]:
    return [make_env() for _ in range(n)]


def rollout(model: GACModel, envs: list[Any], horizon: int, episodes: int, seed: int,
            icfg: InferenceConfig | None = None, planner: Planner | None = None,
            cache: bool = True, target_return: float | None = None, record: bool = False,
            progress: bool = False, bank: PlanBank | None = None,
            replan_every: int | None = None) -> dict[str, Any]:
    """Run ``episodes`` episodes of the GAC policy on ``envs`` stepped together (episodes are
    played in groups of ``len(envs)``); episode k resets with seed ``seed + k``.

    Plans come from ``planner(s0, generator)`` if given, else from ``icfg``'s mode (with
    ``bank``, the training episodes' plans, for the modes that choose among them).
    Returns per-episode ``returns``, ``lengths`` and ``predicted`` (the plan's predicted return,
    raw units); with ``record``, also ``episodes``: the trajectories as ``Episode`` objects
    labelled with their total return only (no step rewards).

    ``replan_every`` k (default: ``icfg.replan_every``, 0: never): every k steps each episode
    gets a new plan from the planner with its current observation as s0, and the decoder's
    context (the last K steps) is replayed under the new plan, so that decoding continues
    exactly as if the episode had been decoded with that plan all along. A planner with
    ``takes_achieved`` set (online exploration) also gets ``achieved``, each episode's return
    so far (B,), at a re-plan.
    """
    if planner is None:
        if icfg is None:
            raise ValueError("rollout needs an InferenceConfig or a planner")
        planner = make_planner(model, icfg, bank, target_return)
    if replan_every is None:
        replan_every = icfg.replan_every if icfg is not None else 0
    # The cached decoder's receptive field: K steps per layer. Replaying that many steps under a
    # new plan rebuilds every layer's keys and values as a full re-encoding would.
    replay = model.cfg.n_layers * (model.cfg.context_steps - 1)

    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    returns, predicted, lengths, recorded = [], [], [], []
    bar = tqdm(total=episodes, desc="rollouts", unit="ep", disable=not progress)
    was_training = model.training
    model.eval()
    for first in range(0, episodes, len(envs)):
        group = envs[: min(len(envs), episodes - first)]
        n = len(group)
        obs = np.stack([env.reset(seed=seed + first + i) for i, env in enumerate(group)])
        s0 = torch.as_tensor(obs, device=device)
        z0 = planner(s0, gen)
        traj_obs = np.zeros((n, horizon, obs.shape[1]), np.float32) if record else None
        traj_act = np.zeros((n, horizon, model.cfg.act_dim), np.float32) if record else None
        with torch.inference_mode():  # cheaper per op than no_grad; decoding needs no autograd
            z = model.prior(z0)
            predicted.append(model.unscale_return(model.predict_return(z, s0)).cpu().numpy())
            total = np.zeros(n)
            length = np.zeros(n, np.int64)
            alive = np.ones(n, bool)  # episodes end early on a true terminal state
            terminal = np.zeros(n, bool)
            if cache:
                state = model.start_episode(z)
            hist_obs, hist_act, hist_t = [], [], []
            recent: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # the last `replay` steps
            for t in range(horizon):
                if not alive.any():
                    break
                obs_t = torch.as_tensor(obs, device=device)
                if replan_every and t and t % replan_every == 0:
                    with torch.inference_mode(False):  # plan search may need autograd
                        s_t = torch.tensor(obs, device=device)
                        if getattr(planner, "takes_achieved", False):
                            z0 = planner(s_t, gen, achieved=torch.as_tensor(total, device=device))
                        else:
                            z0 = planner(s_t, gen)
                    z = model.prior(z0)
                    if cache:  # the weights are those the episode started with
                        state = model.start_episode(z, like=state)
                        for o, a, tt in recent:
                            model.act(state, o, tt)
                            model.observe_action(state, a)
                if cache:
                    action = model.act(state, obs_t, t)  # one timestep for the whole batch
                    model.observe_action(state, action)
                    if replan_every and replay:
                        recent = [*recent, (obs_t.clone(), action, t)][-replay:]
                else:
                    hist_obs.append(obs_t.clone())  # obs_t shares memory with obs, stepped in place
                    hist_t.append(torch.full((n,), t, dtype=torch.long, device=device))
                    action = model.act_uncached(
                        torch.stack(hist_obs, 1),
                        torch.stack(hist_act, 1) if hist_act else
                        torch.zeros(n, 0, model.cfg.act_dim, device=device),
                        torch.stack(hist_t, 1), z)
                    hist_act.append(action)
                act_np = action.cpu().numpy()
                if record:
                    traj_obs[:, t] = obs
                    traj_act[:, t] = act_np
                # One list comprehension, then whole-array bookkeeping: per-element numpy writes
                # in the loop cost about as much as a decoding step at 16 environments.
                live = slice(None) if alive.all() else np.flatnonzero(alive)
                steps = [group[i].step(act_np[i]) for i in np.arange(n)[live]]
                done = np.fromiter((s[2] for s in steps), bool, len(steps))
                obs[live] = [s[0] for s in steps]
                total[live] += np.fromiter((s[1] for s in steps), float, len(steps))
                length[live] += 1
                alive[live] = ~done
                terminal[live] = done
        returns.append(total)
        lengths.append(length)
        if record:
            recorded += [Episode(traj_obs[i, :length[i]].copy(), traj_act[i, :length[i]].copy(),
                                 None, bool(terminal[i]), float(total[i])) for i in range(n)]
        bar.update(n)
    bar.close()
    model.train(was_training)
    out: dict[str, Any] = {"returns": np.concatenate(returns), "lengths": np.concatenate(lengths),
                           "predicted": np.concatenate(predicted)}
    if record:
        out["episodes"] = recorded
    return out
