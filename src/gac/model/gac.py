"""The GAC generative model p(tau, y) = int p(tau | U(z0)) p(y | U(z0)[, s0]) N(z0; 0, I) dz0.

Raw observations and raw returns go in; the model applies the dataset's normalisation, held in
buffers so that it is saved with the state_dict. Actions are assumed to lie in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from gac.config import ModelConfig
from gac.model.decoding import DecodeCache, decode_action, decode_state
from gac.model.decoding import start as start_decoding
from gac.model.prior import build_prior
from gac.model.return_head import ReturnHead, end_head
from gac.model.transformer import TrajectoryTransformer

ArrayLike = Tensor | np.ndarray | float


class GACModel(nn.Module):
    """Prior U (``prior_net``), trajectory transformer and return head, built from a ModelConfig.

    Training: ``prior``, ``action_nll``, ``return_nll``. Planning: ``prior``, ``predict_return``.
    Rollouts: ``start_episode`` then, each step, ``act`` and ``observe_action`` (the cached
    decoding of ``gac.model.decoding``). FLOPs: ``gac.model.flops``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.obs_dim <= 0 or cfg.act_dim <= 0:
            raise ValueError("ModelConfig.obs_dim and act_dim must be set (from the data)")
        self.cfg = cfg
        self.prior_net = build_prior(cfg)
        self.transformer = TrajectoryTransformer(cfg)
        self.return_head = ReturnHead(cfg)
        self.end_head = end_head(cfg) if cfg.end_sigma > 0 else None
        self.register_buffer("obs_mean", torch.zeros(cfg.obs_dim))
        self.register_buffer("obs_std", torch.ones(cfg.obs_dim))
        self.register_buffer("return_scale", torch.tensor(1.0))

    # ---- normalisation -------------------------------------------------------------------
    def set_normalisation(self, obs_mean: ArrayLike, obs_std: ArrayLike,
                          return_scale: ArrayLike) -> None:
        """Dataset statistics: obs -> (obs - mean) / std, return -> return / scale."""
        def put(buffer: Tensor, value: ArrayLike) -> None:
            value = torch.as_tensor(value, dtype=buffer.dtype).to(buffer.device)
            buffer.copy_(value.reshape(buffer.shape))

        with torch.no_grad():
            put(self.obs_mean, obs_mean)
            # Constant features (std 0) would divide by zero; leave them unscaled instead.
            std = torch.as_tensor(obs_std, dtype=self.obs_std.dtype)
            put(self.obs_std, torch.where(std > 1e-6, std, torch.ones_like(std)))
            scale = float(torch.as_tensor(return_scale))
            if not scale > 0:
                raise ValueError(f"return_scale must be positive, got {scale}")
            put(self.return_scale, scale)

    def normalise_obs(self, obs: Tensor) -> Tensor:
        return (obs.to(self.obs_mean.dtype) - self.obs_mean) / self.obs_std

    def scale_return(self, y_raw: ArrayLike) -> Tensor:
        return torch.as_tensor(y_raw, device=self.return_scale.device,
                               dtype=self.return_scale.dtype) / self.return_scale

    def unscale_return(self, y_scaled: ArrayLike) -> Tensor:
        return torch.as_tensor(y_scaled, device=self.return_scale.device,
                               dtype=self.return_scale.dtype) * self.return_scale

    # ---- the three parts -----------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int]:
        """The shape of one plan z0: z's (n_latent, d), or (1, plan_dim) with a plan bottleneck."""
        if self.cfg.plan_dim:
            return (1, self.cfg.plan_dim)
        return (self.cfg.n_latent, self.cfg.d_model)

    @property
    def receptive_field(self) -> int:
        """Past steps that can influence the action at step t: n_layers * (K - 1). A training
        window with this much unscored history before it matches rollout decoding exactly."""
        return self.cfg.n_layers * (self.cfg.context_steps - 1)

    def sample_z0(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """z0 ~ N(0, I), (batch, n_latent, d). Drawn on the generator's device, then moved."""
        p = self.obs_mean
        device = generator.device if generator is not None else p.device
        z0 = torch.randn((batch, *self.latent_shape), generator=generator, device=device)
        return z0.to(device=p.device, dtype=p.dtype)

    def prior(self, z0: Tensor) -> Tensor:
        """z = U(z0), (B, n_latent, d) -> same."""
        return self.prior_net(z0)

    def action_means(self, obs: Tensor, actions: Tensor, timesteps: Tensor, z: Tensor) -> Tensor:
        """Raw obs (B, L, obs_dim), actions (B, L, act_dim), timesteps (B, L), z (B, N, d)
        -> (B, L, act_dim): index t predicts actions[:, t] from the state token of step t."""
        return self.transformer(self.normalise_obs(obs), self._action_input(actions), timesteps, z)

    def _action_input(self, actions: Tensor) -> Tensor:
        # Without action conditioning the action tokens carry no content (only their position
        # and timestep): a policy fed its own past actions can learn to copy them (the
        # "copycat" failure of behaviour cloning), which noisy demonstrations invite.
        return actions if self.cfg.condition_on_actions else torch.zeros_like(actions)

    def predict_return(self, z: Tensor, s0: Tensor | None) -> Tensor:
        """r(z[, s0]) in scaled return units, (B,). s0 is the raw initial observation."""
        if not self.cfg.return_condition_s0:
            return self.return_head(z)
        if s0 is None:
            raise ValueError("this model's return head is conditioned on s0 (return_condition_s0)")
        return self.return_head(z, self.normalise_obs(s0))

    # ---- likelihoods (up to constants) ---------------------------------------------------
    def action_nll(self, obs: Tensor, actions: Tensor, timesteps: Tensor, z: Tensor,
                   loss_mask: Tensor) -> Tensor:
        """Per-sequence sum over masked steps of ||a - mu||^2 / (2 sigma_a^2), (B,)."""
        mu = self.action_means(obs, actions, timesteps, z)
        sq = (actions.to(mu.dtype) - mu).pow(2).sum(-1)
        return (sq * loss_mask.to(mu.dtype)).sum(-1) / (2 * self.cfg.action_sigma**2)

    def step_action_nll(self, batch: dict[str, Tensor], z: Tensor) -> Tensor:
        """Action NLL per scored step of a window batch (obs, actions, timesteps, loss_mask),
        averaged over its windows: the training loss's action term."""
        steps = batch["loss_mask"].sum(1).clamp(min=1)
        return (self.action_nll(batch["obs"], batch["actions"], batch["timesteps"], z,
                                batch["loss_mask"]) / steps).mean()

    def return_nll(self, z: Tensor, s0: Tensor | None, y_raw: ArrayLike) -> Tensor:
        """(r(z[, s0]) - y / scale)^2 / (2 sigma_y^2), (B,)."""
        r = self.predict_return(z, s0)
        return (r - self.scale_return(y_raw)).pow(2) / (2 * self.cfg.return_sigma**2)

    def outcome_nll(self, z: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """The return NLL, plus with an end head the NLL of where each trajectory ends,
        ||e(z, s0) - norm(s_T)||^2 / (2 end_sigma^2), (B,): the plan-level terms of the
        posterior energy and of the loss. ``batch``: s0, returns, and s_end (raw) for an end
        head."""
        nll = self.return_nll(z, batch["s0"], batch["returns"])
        if self.end_head is None:
            return nll
        end = self.end_head(z, self.normalise_obs(batch["s0"]))
        target = self.normalise_obs(batch["s_end"].to(end.dtype))
        return nll + (end - target).pow(2).sum(-1) / (2 * self.cfg.end_sigma**2)

    # ---- rollouts ------------------------------------------------------------------------
    @torch.no_grad()
    def start_episode(self, z: Tensor, like: DecodeCache | None = None) -> DecodeCache:
        """A decoding cache for plans z (B, N, d): cross-attention of z folded into per-episode
        weights once, and self-attention rings of the last 2K tokens per layer. ``like``: the
        cache being replaced at a re-plan, with these weights: what it folded independently
        of the plans is reused."""
        return start_decoding(self.transformer, z, self.obs_mean, self.obs_std, like)

    @torch.no_grad()
    def act(self, cache: DecodeCache, obs_t: Tensor, timestep_t: int | Tensor) -> Tensor:
        """Append the state token of the current step (raw obs (B, obs_dim)); return the action
        mean (B, act_dim). Follow with ``observe_action`` before the next ``act``."""
        t = timestep_t  # a plain int is looked up once for the whole batch
        if not isinstance(t, int):
            t = torch.as_tensor(t, device=obs_t.device).long().expand(obs_t.shape[0])
        return decode_state(self.transformer, cache, obs_t, t)

    @torch.no_grad()
    def observe_action(self, cache: DecodeCache, action_t: Tensor) -> None:
        """Append the action token (B, act_dim) actually taken at the current step. It is
        embedded now and goes through the layers with the next step's state token."""
        decode_action(self.transformer, cache, self._action_input(action_t))

    @torch.no_grad()
    def act_uncached(self, obs_hist: Tensor, act_hist: Tensor, timesteps_hist: Tensor,
                     z: Tensor) -> Tensor:
        """Reference decoder re-encoding the whole history: obs_hist (B, t+1, obs_dim) up to the
        current observation, act_hist (B, t or t+1, act_dim) of past actions (a trailing current
        action is ignored), timesteps_hist (B, t+1) -> action mean of step t, (B, act_dim)."""
        b, steps, _ = obs_hist.shape
        actions = act_hist[:, : steps - 1]
        # The state token of step t never sees a_t, so any placeholder works for it.
        pad = actions.new_zeros(b, steps - actions.shape[1], self.cfg.act_dim)
        actions = torch.cat([actions, pad], dim=1)
        return self.action_means(obs_hist, actions, timesteps_hist, z)[:, -1]

    # ---- size ----------------------------------------------------------------------------
    def n_params(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
