"""Causal trajectory transformer over interleaved (s_0, a_0, s_1, a_1, ...) tokens.

Token 2t is the state of step t, token 2t+1 its action. Each block: pre-LayerNorm band-limited
causal self-attention with rotary position embeddings on the token index, cross-attention to
the latent plan tokens z, then a 4x GELU MLP. A token of step t attends only to tokens of steps
t-K+1..t (K = ``context_steps``), so stacking n layers gives a receptive field of
n*(K-1) past steps, and each layer needs only the last 2K keys/values when decoding.

The action mean of step t is read from the output of the *state* token s_t, which sees
s_<=t and a_<t but never a_t (LPT read action-token outputs, which see the action itself).

Decoding one environment step at a time, with cached keys and values, is in
``gac.model.decoding``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gac.config import ModelConfig

ROPE_BASE = 10000.0


def rope_tables(positions: Tensor, head_dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and sin tables (T, head_dim) for absolute token positions (T,).

    Angles are formed in float64: a 1000-step episode reaches position 2000, where float32
    angles would be off by ~1e-4 rad and break the match between short training windows
    (positions from 0) and long rollouts. MPS has no float64 and falls back to float32.
    """
    wide = torch.float32 if positions.device.type == "mps" else torch.float64
    exponent = torch.arange(0, head_dim, 2, device=positions.device, dtype=wide) / head_dim
    angles = positions.to(wide)[:, None] * ROPE_BASE ** -exponent
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, head_dim) queries or keys by their positions (GPT-NeoX half layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def band_mask(n_tokens: int, context_steps: int, device: torch.device) -> Tensor:
    """(T, T) bool, True where query token i may attend to key token j: j <= i and
    step(j) >= step(i) - K + 1, with step(i) = i // 2."""
    i = torch.arange(n_tokens, device=device)
    query, key = i[:, None], i[None, :]
    return (key <= query) & (key // 2 >= query // 2 - context_steps + 1)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def _qkv(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def _out(self, y: Tensor) -> Tensor:
        b, h, t, hd = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, t, h * hd))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:
        q, k, v = self._qkv(x, cos, sin)
        # SDPA's default scale is 1/sqrt(head_dim); no dropout, so the fused kernels stay usable.
        return self._out(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

class CrossAttention(nn.Module):
    """Queries from the trajectory tokens, keys/values from the LayerNormed latent tokens z."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln_z = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def latent_kv(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b, n, d = z.shape
        k, v = self.kv(self.ln_z(z)).view(b, n, 2, self.n_heads, d // self.n_heads).permute(
            2, 0, 3, 1, 4
        )
        return k, v

    def forward(self, x: Tensor, k: Tensor, v: Tensor) -> Tensor:
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.cross = CrossAttention(d_model, n_heads)
        self.ln3 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def _rest(self, x: Tensor, zk: Tensor, zv: Tensor) -> Tensor:
        x = x + self.drop(self.cross(self.ln2(x), zk, zv))
        return x + self.drop(self.mlp(self.ln3(x)))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor,
                zk: Tensor, zv: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cos, sin, mask))
        return self._rest(x, zk, zv)

class TrajectoryTransformer(nn.Module):
    """p(a_t | s_<=t, a_<t, z): works on *normalised* observations (the GAC model normalises)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        if d % h or (d // h) % 2:
            raise ValueError(f"d_model={d} must split into n_heads={h} heads of even width (RoPE)")
        self.d_model, self.n_heads, self.head_dim = d, h, d // h
        self.context_steps = cfg.context_steps
        self.max_timestep = cfg.max_timestep
        self.state_embed: nn.Module = (
            nn.Linear(cfg.obs_dim, d) if cfg.state_encoder == "linear" else
            nn.Sequential(nn.Linear(cfg.obs_dim, cfg.state_hidden), nn.GELU(),
                          nn.Linear(cfg.state_hidden, d)))
        self.action_embed = nn.Linear(cfg.act_dim, d)
        self.time_embed = nn.Embedding(cfg.max_timestep, d) if cfg.timestep_embedding else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, h, cfg.dropout) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.action_head = nn.Linear(d, cfg.act_dim)
        self._tables: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}  # (T, device, dtype) -> mask, cos, sin
        self.apply(self._init_weights)
        if cfg.state_encoder == "mlp":  # PyTorch's default init: at std 0.02 the few input
            for layer in self.state_embed.modules():  # features start as near-zero features
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        for block in self.blocks:  # GPT-2: shrink residual projections with depth
            for proj in (block.attn.proj, block.cross.proj, block.mlp[-1]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * len(self.blocks)))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # ---- shared pieces -------------------------------------------------------------------
    def step_embedding(self, timesteps: Tensor | int) -> Tensor | None:
        """Learned embedding of environment timesteps (clamped into the table), or None.
        An int gives one row (d,) shared by the whole batch."""
        if self.time_embed is None:
            return None
        if isinstance(timesteps, int):
            return self.time_embed.weight[min(max(timesteps, 0), self.max_timestep - 1)]
        return self.time_embed(timesteps.long().clamp(0, self.max_timestep - 1))

    def embed_state(self, obs: Tensor) -> Tensor:
        """Normalised observations (..., obs_dim) -> state tokens (..., d)."""
        e = self.state_embed
        if isinstance(e, nn.Linear):  # the functional form: decoding calls this every step
            return F.linear(obs, e.weight, e.bias)
        return e(obs)

    def latent_kv(self, z: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [block.cross.latent_kv(z) for block in self.blocks]

    def head(self, h: Tensor) -> Tensor:
        return torch.tanh(self.action_head(self.ln_f(h)))

    def _tables_for(self, n_tokens: int, device: torch.device, dtype: torch.dtype):
        """Band mask and RoPE tables for a training-length sequence, built once per length."""
        key = (n_tokens, device, dtype)
        if key not in self._tables:
            cos, sin = rope_tables(torch.arange(n_tokens, device=device), self.head_dim, dtype)
            self._tables[key] = (band_mask(n_tokens, self.context_steps, device), cos, sin)
        return self._tables[key]

    # ---- whole sequences (training, posterior, uncached reference) ------------------------
    def forward(self, obs: Tensor, actions: Tensor, timesteps: Tensor, z: Tensor) -> Tensor:
        """obs (B, L, obs_dim) normalised, actions (B, L, act_dim), timesteps (B, L), z (B, N, d)
        -> action means (B, L, act_dim), index t read from the state token of step t."""
        b, length, _ = obs.shape
        s_tok, a_tok = self.embed_state(obs), self.action_embed(actions.to(obs.dtype))
        t_emb = self.step_embedding(timesteps)
        if t_emb is not None:
            s_tok, a_tok = s_tok + t_emb, a_tok + t_emb
        x = self.drop(torch.stack([s_tok, a_tok], dim=2).reshape(b, 2 * length, self.d_model))
        mask, cos, sin = self._tables_for(2 * length, x.device, x.dtype)
        for block, (zk, zv) in zip(self.blocks, self.latent_kv(z), strict=True):
            x = block(x, cos, sin, mask, zk, zv)
        return self.head(x[:, 0::2])

