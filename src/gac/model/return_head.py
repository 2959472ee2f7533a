"""Heads on the plan: the return head r(z[, s0]), the mean of p(y | z[, s0]) = N(r, sigma^2) in
scaled return units, and the end head e(z, s0), the mean of p(s_T | z, s0) for the trajectory's
last observation (normalised)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gac.config import ModelConfig


class ReturnHead(nn.Module):
    """MLP on the flattened plan z, optionally joined by the normalised initial state s0
    (where the return depends on the start, e.g. mazes, z alone cannot predict it)."""

    def __init__(self, cfg: ModelConfig, out_dim: int = 1, condition_s0: bool | None = None):
        super().__init__()
        self.condition_s0 = cfg.return_condition_s0 if condition_s0 is None else condition_s0
        self.out_dim = out_dim
        dim = cfg.n_latent * cfg.d_model + (cfg.obs_dim if self.condition_s0 else 0)
        h = cfg.return_hidden
        self.net = nn.Sequential(
            nn.Linear(dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, out_dim)
        )

    def forward(self, z: Tensor, s0_normalised: Tensor | None = None) -> Tensor:
        """z (B, n_latent, d), s0_normalised (B, obs_dim) or None -> (B,), or (B, out_dim)
        for a head of several outputs."""
        x = z.flatten(1)
        if self.condition_s0:
            if s0_normalised is None:
                raise ValueError("this return head is conditioned on s0 (return_condition_s0)")
            x = torch.cat([x, s0_normalised.to(x.dtype)], dim=-1)
        out = self.net(x)
        return out.squeeze(-1) if self.out_dim == 1 else out


def end_head(cfg: ModelConfig) -> ReturnHead:
    """e(z, s0) -> the normalised last observation (B, obs_dim): where a plan started at s0
    ends. Always conditioned on s0, since where a trajectory ends depends on where it began."""
    return ReturnHead(cfg, out_dim=cfg.obs_dim, condition_s0=True)
