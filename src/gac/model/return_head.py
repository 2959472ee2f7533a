"""Return head r(z[, s0]): the mean of p(y | z[, s0]) = N(r, sigma^2) in scaled return units."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gac.config import ModelConfig


class ReturnHead(nn.Module):
    """MLP on the flattened plan z, optionally joined by the normalised initial state s0
    (where the return depends on the start, e.g. mazes, z alone cannot predict it)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.condition_s0 = cfg.return_condition_s0
        dim = cfg.n_latent * cfg.d_model + (cfg.obs_dim if self.condition_s0 else 0)
        h = cfg.return_hidden
        self.net = nn.Sequential(
            nn.Linear(dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1)
        )

    def forward(self, z: Tensor, s0_normalised: Tensor | None = None) -> Tensor:
        """z (B, n_latent, d), s0_normalised (B, obs_dim) or None -> (B,)."""
        x = z.flatten(1)
        if self.condition_s0:
            if s0_normalised is None:
                raise ValueError("this return head is conditioned on s0 (return_condition_s0)")
            x = torch.cat([x, s0_normalised.to(x.dtype)], dim=-1)
        return self.net(x).squeeze(-1)
