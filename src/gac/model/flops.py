"""Model-FLOP estimates for MFU benchmarks (useful work, not hardware FLOPs).

Convention: one multiply-add = 2 FLOPs; only matrix products count (norms, activations,
softmax and RoPE are ignored, as in the usual 2*params-per-token estimate).

Transformer, forward, per token (d = d_model, n = n_layers, N = n_latent):

    per layer:  2 * 4d^2        self-attention Q, K, V and output projections
              + 2 * 2d * c      self-attention scores and weighted sum over c attended keys
              + 2 * 2d^2        cross-attention Q and output projections
              + 2 * 2d * N      cross-attention scores and weighted sum over the N latent tokens
              + 2 * 8d^2        MLP (d -> 4d -> d)
    plus the token embedding (2*obs_dim*d on state tokens, 2*act_dim*d on action tokens) and the
    action head (2*d*act_dim on state tokens only),

where c is the mean number of keys a query attends to under the band mask (at most 2K; fewer
near the start of a sequence). Per sequence once: the cross-attention K, V of z,
n * 2 * 2d^2 * N. The prior U and the return head are counted once per sequence by
``torch.utils.flop_counter`` on a single sample.

A training update on B sequences of L steps costs ~3x the forward (forward + backward for
activations + backward for weights); each Langevin step costs ~2x the forward (the gradient is
taken with respect to z0 only, so no weight gradients).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import FlopCounterMode

from gac.config import ModelConfig

if TYPE_CHECKING:
    from gac.model.gac import GACModel


def mean_attended_keys(n_tokens: int, context_steps: int) -> float:
    """Mean number of keys per query under the causal band mask over ``n_tokens`` tokens."""
    i = torch.arange(n_tokens)
    first = 2 * (i // 2 - context_steps + 1).clamp(min=0)
    return float((i - first + 1).double().mean())


def transformer_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs per token of the transformer for sequences of ``seq_len`` steps."""
    d, n_lat = cfg.d_model, cfg.n_latent
    c = mean_attended_keys(2 * seq_len, cfg.context_steps)
    per_layer = 2 * 4 * d * d + 4 * d * c + 2 * 2 * d * d + 4 * d * n_lat + 2 * 8 * d * d
    state = (cfg.obs_dim * d if cfg.state_encoder == "linear"
             else cfg.state_hidden * (cfg.obs_dim + d))  # 2 x the MACs on half of the tokens
    embed = state + d * cfg.act_dim  # mean of the state and action tokens' 2 x MACs
    head = d * cfg.act_dim  # 2*d*act_dim on half of the tokens
    return cfg.n_layers * per_layer + embed + head


def _counted_flops(fn) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def forward_flops(model: GACModel, batch: int, seq_len: int) -> float:
    """Forward FLOPs of prior + transformer + return head on ``batch`` sequences of
    ``seq_len`` steps (one latent plan per sequence)."""
    cfg = model.cfg
    per_seq_latent = cfg.n_layers * 2 * 2 * cfg.d_model**2 * cfg.n_latent
    p = next(model.parameters())
    z0 = torch.zeros(1, cfg.n_latent, cfg.d_model, device=p.device, dtype=p.dtype)
    s0 = torch.zeros(1, cfg.obs_dim, device=p.device, dtype=p.dtype)
    per_seq_heads = _counted_flops(lambda: model.predict_return(model.prior(z0), s0))
    tokens = 2 * seq_len
    return batch * (tokens * transformer_flops_per_token(cfg, seq_len)
                    + per_seq_latent + per_seq_heads)


def flops_per_update(model: GACModel, batch: int, seq_len: int, langevin_steps: int = 0) -> float:
    """FLOPs of one training update: 3x forward for the parameter gradient plus 2x forward per
    Langevin posterior step."""
    return (3 + 2 * langevin_steps) * forward_flops(model, batch, seq_len)
