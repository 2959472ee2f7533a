"""Prior transforms z = U(z0): a learned map from N(0, I) noise to latent plans.

All of them return tensors of shape (B, n_latent, d_model), from z0 of the same shape, or, for the
MLP prior with ``plan_dim`` N, from z0 of shape (B, 1, N). The learned ones are residual (z0, or
a fixed random lift of it, plus a small correction at initialisation), so training starts from a
plain Gaussian prior and learns only the deviation from it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gac.config import ModelConfig


def _shrink_(layer: nn.Module, factor: float = 0.1) -> None:
    """Scale a layer's initial weights down so the residual branch starts small (U ~ identity),
    while every parameter still receives a gradient from the first update."""
    with torch.no_grad():
        layer.weight.mul_(factor)
        if layer.bias is not None:
            layer.bias.zero_()


class IdentityPrior(nn.Module):
    """z = z0: the ablation without a learned prior."""

    def forward(self, z0: Tensor) -> Tensor:
        return z0


class MLPPrior(nn.Module):
    """z = z0 + MLP(z0) on the flattened plan vector: a cheap learned prior.

    With ``plan_dim`` N > 0, z0 has N numbers and z = W z0 + MLP(z0), W a learned linear lift
    to the n_latent x d_model tokens, initialised so that z starts near N(0, I) in every entry."""

    def __init__(self, n_latent: int, d_model: int, hidden: int, plan_dim: int = 0):
        super().__init__()
        self.shape = (n_latent, d_model)
        dim = n_latent * d_model
        in_dim = plan_dim or dim
        self.lift = nn.Linear(in_dim, dim, bias=False) if plan_dim else None
        if self.lift is not None:  # unit-variance entries of z for z0 ~ N(0, I)
            nn.init.normal_(self.lift.weight, std=in_dim ** -0.5)
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, dim),
        )
        _shrink_(self.net[-1])

    def forward(self, z0: Tensor) -> Tensor:
        flat = z0.flatten(1)
        base = self.lift(flat) if self.lift is not None else flat
        return (base + self.net(flat)).view(len(z0), *self.shape)


def _groups(channels: int, max_groups: int = 8) -> int:
    return math.gcd(max_groups, channels)


class ResBlock1d(nn.Module):
    """Pre-activation residual block: GroupNorm -> SiLU -> Conv, twice."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNetPrior(nn.Module):
    """LPT's prior: a 1-D UNet over the flattened z0, seen as one channel of length n_latent*d.

    Channels dim*mults per level; one ResBlock per level on each path (LPT uses two plus linear
    attention, which costs more than it is worth on a CPU); stride-2 convolutions halve the
    length between levels, nearest upsampling + conv doubles it back; skip connections join
    each level. No time embedding. Output: z0 + conv(h), with the output conv shrunk at
    initialisation so U starts near the identity.
    """

    def __init__(self, n_latent: int, d_model: int, dim: int, mults: tuple[int, ...]):
        super().__init__()
        self.length = n_latent * d_model
        self.factor = 2 ** (len(mults) - 1)  # the length must divide by this; padded otherwise
        widths = [dim * m for m in mults]
        pairs = list(zip([widths[0], *widths[:-1]], widths, strict=True))
        self.init_conv = nn.Conv1d(1, widths[0], 7, padding=3)
        self.downs = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            down = nn.Conv1d(c_in, c_out, 3, padding=1) if last else nn.Conv1d(c_in, c_out, 4, 2, 1)
            self.downs.append(nn.ModuleList([ResBlock1d(c_in, c_in), down]))
        self.mid = ResBlock1d(widths[-1], widths[-1])
        self.ups = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(reversed(pairs)):
            last = i == len(pairs) - 1
            up = (
                nn.Conv1d(c_out, c_in, 3, padding=1)
                if last
                else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                   nn.Conv1d(c_out, c_in, 3, padding=1))
            )
            self.ups.append(nn.ModuleList([ResBlock1d(c_out + c_in, c_out), up]))
        self.final = ResBlock1d(2 * widths[0], widths[0])
        self.out_norm = nn.GroupNorm(_groups(widths[0]), widths[0])
        self.out_conv = nn.Conv1d(widths[0], 1, 1)
        _shrink_(self.out_conv)

    def forward(self, z0: Tensor) -> Tensor:
        x = z0.reshape(z0.shape[0], 1, -1)
        pad = (-self.length) % self.factor
        if pad:
            x = F.pad(x, (0, pad))
        h = self.init_conv(x)
        first = h
        skips = []
        for block, down in self.downs:
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for block, up in self.ups:
            h = up(block(torch.cat([h, skips.pop()], dim=1)))
        h = self.final(torch.cat([h, first], dim=1))
        out = self.out_conv(F.silu(self.out_norm(h)))[..., : self.length]
        return z0 + out.view_as(z0)


def build_prior(cfg: ModelConfig) -> nn.Module:
    """The prior transform U named by ``cfg.prior``."""
    if cfg.prior == "unet":
        return UNetPrior(cfg.n_latent, cfg.d_model, cfg.unet_dim, tuple(cfg.unet_mults))
    if cfg.prior == "mlp":
        return MLPPrior(cfg.n_latent, cfg.d_model, cfg.mlp_hidden, cfg.plan_dim)
    if cfg.prior == "identity":
        return IdentityPrior()
    raise ValueError(f"unknown prior {cfg.prior!r}; expected 'unet', 'mlp' or 'identity'")
