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
from gac.inference import plan
from gac.model import GACModel


def rollout(model: GACModel, make_env: Callable[[], Any], horizon: int, episodes: int,
            seed: int, icfg: InferenceConfig, n_envs: int = 16, cache: bool = True,
            target_return: float | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """Run ``episodes`` episodes of the GAC policy; episode k resets with seed ``seed + k``.

    Returns per-episode ``returns`` and ``predicted`` (the plan's predicted return, raw units).
    """
    device = next(model.parameters()).device
    envs = [make_env() for _ in range(min(n_envs, episodes))]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    returns, predicted = [], []
    bar = tqdm(total=episodes, desc="evaluating", unit="ep", disable=not progress)
    was_training = model.training
    model.eval()
    for first in range(0, episodes, len(envs)):
        group = envs[: min(len(envs), episodes - first)]
        obs = np.stack([env.reset(seed=seed + first + i) for i, env in enumerate(group)])
        s0 = torch.as_tensor(obs, device=device)
        z0 = plan(model, s0, icfg, generator=gen, target_return=target_return)
        with torch.no_grad():
            z = model.prior(z0)
            predicted.append(model.unscale_return(model.predict_return(z, s0)).cpu().numpy())
            total = np.zeros(len(group))
            alive = np.ones(len(group), bool)  # episodes end early on a true terminal state
            if cache:
                state = model.start_episode(z)
            hist_obs, hist_act, hist_t = [], [], []
            for t in range(horizon):
                if not alive.any():
                    break
                obs_t = torch.as_tensor(obs, device=device)
                ts = torch.full((len(group),), t, dtype=torch.long, device=device)
                if cache:
                    action = model.act(state, obs_t, ts)
                else:
                    hist_obs.append(obs_t)
                    hist_t.append(ts)
                    action = model.act_uncached(
                        torch.stack(hist_obs, 1),
                        torch.stack(hist_act, 1) if hist_act else
                        torch.zeros(len(group), 0, model.cfg.act_dim, device=device),
                        torch.stack(hist_t, 1), z)
                    hist_act.append(action)
                if cache:
                    model.observe_action(state, action)
                act_np = action.cpu().numpy()
                for i, env in enumerate(group):
                    if alive[i]:
                        obs[i], reward, terminated, _, _ = env.step(act_np[i])
                        total[i] += reward
                        alive[i] = not terminated
        returns.append(total)
        bar.update(len(group))
    bar.close()
    model.train(was_training)
    for env in envs:
        env.close()
    return {"returns": np.concatenate(returns), "predicted": np.concatenate(predicted)}
