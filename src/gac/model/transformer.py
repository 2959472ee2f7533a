"""Causal trajectory transformer over interleaved (s_0, a_0, s_1, a_1, ...) tokens.

Token 2t is the state of step t, token 2t+1 its action. Each block: pre-LayerNorm band-limited
causal self-attention with rotary position embeddings on the token index, cross-attention to
the latent plan tokens z, then a 4x GELU MLP. A token of step t attends only to tokens of steps
t-K+1..t (K = ``context_steps``), so stacking n layers gives a receptive field of
n*(K-1) past steps, and each layer needs only the last 2K keys/values when decoding.

The action mean of step t is read from the output of the *state* token s_t, which sees
s_<=t and a_<t but never a_t (LPT read action-token outputs, which see the action itself).

Incremental decoding (``start`` / ``decode_state`` / ``decode_action``) keeps rotated keys and
values in a ring buffer of 2K slots per layer, so memory is bounded however long the episode;
RoPE uses absolute token positions, so a cached key never needs re-rotating. Decoding cost is
per-op overhead more than FLOPs, so each environment step makes one pass through the layers:
``decode_action`` only embeds the action, and the next ``decode_state`` runs the chunk
[a_{t-1}, s_t] through every layer at once (in the last layer only s_t's output is computed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


class DecodeTables:
    """RoPE rows and attention biases of incremental decoding, shared by all episodes of a
    (device, dtype) so that a step only slices or looks them up.

    Chunk t holds the tokens [a_{t-1}, s_t] at positions 2t-1, 2t (just [s_0] for t = 0).
    Its attention keys are the 2K ring slots as they were before the chunk, followed by the
    chunk's own tokens; the token at position p lives in slot (p + 1) % 2K, so a chunk fills
    two adjacent slots. Once the ring is full, the bias depends only on t mod K.
    """

    def __init__(self, context_steps: int, n_heads: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype):
        self.context_steps, self.ring = context_steps, 2 * context_steps
        self.n_heads, self.head_dim = n_heads, head_dim
        self.device, self.dtype = device, dtype
        self.cos = self.sin = torch.empty(0, 2 * n_heads * head_dim, device=device, dtype=dtype)
        half = torch.arange(head_dim, device=device) < head_dim // 2
        self._sign = torch.where(half, -1.0, 1.0).to(dtype)  # rotate_half negates the first half
        self._biases: dict[int, Tensor] = {}

    def rope(self, first: int, end: int) -> tuple[Tensor, Tensor]:
        """cos and signed sin rows (end - first, 2d) for positions first..end-1, laid out to
        multiply queries and keys side by side [q heads | k heads]: RoPE is then
        x * cos + swap_halves(x) * sin, with the sign of rotate_half already in sin."""
        if end > self.cos.shape[0]:  # grow geometrically; rows of old positions don't change
            positions = torch.arange(2 * end, device=self.device)
            cos, sin = rope_tables(positions, self.head_dim, self.dtype)
            heads = 2 * self.n_heads
            self.cos, self.sin = cos.repeat(1, heads), (sin * self._sign).repeat(1, heads)
        return self.cos[first:end], self.sin[first:end]

    def bias(self, step: int) -> Tensor:
        """Additive attention bias (T, 2K + T) of chunk ``step``: 0 where allowed, -inf not."""
        k = self.context_steps
        key = step if step <= k else k + 1 + (step - k - 1) % k  # periodic once the ring is full
        if key not in self._biases:
            self._biases[key] = self._build_bias(key)
        return self._biases[key]

    def _build_bias(self, step: int) -> Tensor:
        newest = 2 * step - 2  # newest position already in the ring
        slots = torch.arange(self.ring)
        ring_pos = newest - (newest - (slots - 1)) % self.ring  # < 0: slot still empty
        chunk_pos = torch.arange(max(2 * step - 1, 0), 2 * step + 1)
        query, key = chunk_pos[:, None], torch.cat([ring_pos, chunk_pos])[None, :]
        allowed = (key >= 0) & (key <= query) & (key // 2 >= query // 2 - self.context_steps + 1)
        bias = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill(~allowed, -math.inf)
        return bias.to(self.device)


@dataclass
class FoldedCross:
    """One block's cross-attention to fixed plans z, folded once per episode in ``start``:
    scores = ln2(x) @ keys + bias, output = softmax(scores) @ values + proj.bias."""

    keys: Tensor  # (B, d, H*N)
    bias: Tensor  # (B, 1, H*N)
    values: Tensor  # (B, H*N, d)


@dataclass
class DecodeCache:
    """State of batched incremental decoding for one episode (all B environments in lockstep).

    ``kv`` holds, per layer, the rotated self-attention keys and values side by side of the
    last 2K tokens that went through the layers, in a ring: position p lives in slot
    (p + 1) % 2K. Two more slots stage the current chunk, so that attention reads the ring
    and the chunk as one tensor. The action token of the current step waits in
    ``pending_action`` until the next step's state token arrives, and both then go through
    the layers as one chunk.
    """

    cross: list[FoldedCross]  # per layer
    kv: Tensor  # (n_layers, B, 2K + 2, 2d): [keys | values], heads side by side
    tables: DecodeTables
    n_heads: int
    step: int = 0  # environment step of the next state token
    awaiting_action: bool = False  # decode_state ran for ``step - 1``; decode_action is next
    step_embedding: Tensor | None = None  # of the last state token, (B, d) or shared (d,)
    pending_action: Tensor | None = None  # embedded action token of step ``step - 1`` (B, d)

    @property
    def ring_size(self) -> int:
        return self.kv.shape[2] - 2

    def _heads(self, x: Tensor) -> Tensor:
        return x[:, :, : self.ring_size].unflatten(-1, (self.n_heads, -1)).transpose(2, 3)

    @property
    def keys(self) -> Tensor:
        """View (n_layers, B, H, 2K, head_dim) of the ring of rotated keys."""
        return self._heads(self.kv[..., : self.kv.shape[-1] // 2])

    @property
    def values(self) -> Tensor:
        """View (n_layers, B, H, 2K, head_dim) of the ring of values."""
        return self._heads(self.kv[..., self.kv.shape[-1] // 2:])


def _layer_norm(ln: nn.LayerNorm, x: Tensor) -> Tensor:
    # The functional form skips nn.Module call overhead, which dominates at decoding sizes.
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _linear(lin: nn.Linear, x: Tensor) -> Tensor:
    return F.linear(x, lin.weight, lin.bias)


def _ring_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, n_heads: int) -> Tensor:
    """q (B, T, d), k and v (B, S, d) with heads side by side, bias (T, S) -> (B, T, d)."""
    scale = (q.shape[-1] // n_heads) ** -0.5
    if n_heads == 1:  # plain batched matmuls beat SDPA's dispatch at a handful of keys
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale)
        return torch.bmm(scores.softmax(-1), v)
    b, t, d = q.shape

    def split(x: Tensor) -> Tensor:
        return x.unflatten(-1, (n_heads, -1)).transpose(1, 2)

    y = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias)
    return y.transpose(1, 2).reshape(b, t, d)


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

    def decode(self, x: Tensor, kv: Tensor, slot: int, bias: Tensor, cos: Tensor, sin: Tensor,
               last_only: bool) -> Tensor:
        """Chunk x (B, T, d) at consecutive positions: attend to the ring and causally within
        the chunk, then store the chunk's K/V in slots ``slot``.. of the ring. kv (B, R + 2, 2d)
        is the ring of R slots and two staging slots; cos, sin from ``DecodeTables.rope``.
        Returns (B, T, d), or only the last row (B, 1, d) when ``last_only``."""
        t, d = x.shape[1], x.shape[2]
        ring = kv.shape[1] - 2
        qkv = _linear(self.qkv, x)  # (B, T, 3d)
        qk = qkv[..., : 2 * d]
        swapped = qk.unflatten(-1, (2 * self.n_heads, 2, -1)).flip(-2).flatten(2)
        qk.mul_(cos).addcmul_(swapped, sin)  # RoPE on q and k, in place
        q, new_kv = qkv[..., :d], qkv[..., d:]
        kv[:, ring: ring + t] = new_kv  # stage: the chunk may need the ring slots it overwrites
        if last_only:
            q, bias = q[:, -1:], bias[-1:]
        keys = kv[:, : ring + t]
        y = _ring_attention(q, keys[..., :d], keys[..., d:], bias, self.n_heads)
        kv[:, slot: slot + t] = new_kv
        return _linear(self.proj, y)


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

    def fold(self, z: Tensor) -> FoldedCross:
        """For fixed z, fold the query and output projections into z's keys and values:
        scores_h = (x W_qh^T + b_qh) k_h^T / sqrt(hd) = x (W_qh^T k_h^T / sqrt(hd)) + b_qh k_h^T
        / sqrt(hd) and out = sum_h p_h v_h W_ph^T + b_p: two small matmuls per decoded token
        instead of two d x d projections (equal up to float rounding)."""
        k, v = self.latent_kv(z)  # (B, H, N, hd)
        b, h, n, hd = k.shape
        scale = hd**-0.5
        w_q = self.q.weight.view(h, hd, -1)  # (H, hd, d)
        keys = torch.einsum("hjd,bhnj->bdhn", w_q, k).reshape(b, -1, h * n) * scale
        bias = torch.einsum("hj,bhnj->bhn", self.q.bias.view(h, hd), k).reshape(b, 1, h * n)
        values = torch.einsum("bhnj,dhj->bhnd", v, self.proj.weight.view(-1, h, hd))
        return FoldedCross(keys, bias * scale, values.reshape(b, h * n, -1))

    def decode(self, x: Tensor, folded: FoldedCross) -> Tensor:
        """Cross-attention of x (B, T, d), already LayerNormed, with the folded weights."""
        scores = torch.baddbmm(folded.bias, x, folded.keys)  # (B, T, H*N)
        if self.n_heads == 1:
            weights = scores.softmax(-1)
        else:
            weights = scores.unflatten(-1, (self.n_heads, -1)).softmax(-1).flatten(2)
        return torch.baddbmm(self.proj.bias, weights, folded.values)


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

    def _dropout(self, x: Tensor) -> Tensor:
        return self.drop(x) if self.training else x  # skip the call in eval mode

    def decode(self, x: Tensor, cross: FoldedCross, kv: Tensor, slot: int, bias: Tensor,
               cos: Tensor, sin: Tensor, last_only: bool) -> Tensor:
        """``forward`` for a chunk x (B, T, d) of new tokens against the cached ring; with
        ``last_only`` only the last token's output is computed (all K/V still are)."""
        y = self.attn.decode(_layer_norm(self.ln1, x), kv, slot, bias, cos, sin, last_only)
        return self._decode_rest((x[:, -1:] if last_only else x) + self._dropout(y), cross)

    def decode_alone(self, x: Tensor, cross: FoldedCross) -> Tensor:
        """``forward`` for tokens (B, 1, d) that attend to themselves only (a one-step context's
        state tokens): softmax over one key is 1, so self-attention is the value projection."""
        d = x.shape[-1]
        qkv = self.attn.qkv
        v = F.linear(_layer_norm(self.ln1, x), qkv.weight[2 * d:], qkv.bias[2 * d:])
        return self._decode_rest(x + self._dropout(_linear(self.attn.proj, v)), cross)

    def _decode_rest(self, x: Tensor, cross: FoldedCross) -> Tensor:
        x = x + self._dropout(self.cross.decode(_layer_norm(self.ln2, x), cross))
        up, act, down = self.mlp
        h = F.gelu(_linear(up, _layer_norm(self.ln3, x)), approximate=act.approximate)
        return x + self._dropout(_linear(down, h))


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
        self.state_embed = nn.Linear(cfg.obs_dim, d)
        self.action_embed = nn.Linear(cfg.act_dim, d)
        self.time_embed = nn.Embedding(cfg.max_timestep, d) if cfg.timestep_embedding else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, h, cfg.dropout) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.action_head = nn.Linear(d, cfg.act_dim)
        self._tables: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}  # (T, device, dtype) -> mask, cos, sin
        self._decode_tables: dict[tuple[torch.device, torch.dtype], DecodeTables] = {}
        self.apply(self._init_weights)
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
        s_tok, a_tok = self.state_embed(obs), self.action_embed(actions.to(obs.dtype))
        t_emb = self.step_embedding(timesteps)
        if t_emb is not None:
            s_tok, a_tok = s_tok + t_emb, a_tok + t_emb
        x = self.drop(torch.stack([s_tok, a_tok], dim=2).reshape(b, 2 * length, self.d_model))
        mask, cos, sin = self._tables_for(2 * length, x.device, x.dtype)
        for block, (zk, zv) in zip(self.blocks, self.latent_kv(z), strict=True):
            x = block(x, cos, sin, mask, zk, zv)
        return self.head(x[:, 0::2])

    # ---- incremental decoding --------------------------------------------------------------
    def start(self, z: Tensor) -> DecodeCache:
        """A cache for plans z (B, N, d): cross-attention folded with z once (so an episode
        decodes with the weights it started with), empty K/V rings."""
        key = (z.device, z.dtype)
        if key not in self._decode_tables:
            self._decode_tables[key] = DecodeTables(
                self.context_steps, self.n_heads, self.head_dim, z.device, z.dtype
            )
        shape = (len(self.blocks), z.shape[0], 2 * self.context_steps + 2, 2 * self.d_model)
        return DecodeCache(
            cross=[block.cross.fold(z) for block in self.blocks],
            kv=z.new_zeros(shape),
            tables=self._decode_tables[key],
            n_heads=self.n_heads,
        )

    def _decode_chunk(self, cache: DecodeCache, x: Tensor) -> Tensor:
        """Run chunk x (B, T, d) ending at the state token of step cache.step through the
        layers; return the state token's final hidden (B, d)."""
        end = 2 * cache.step + 1  # one past the state token's position
        first = end - x.shape[1]
        cos, sin = cache.tables.rope(first, end)
        bias = cache.tables.bias(cache.step)
        slot = (first + 1) % cache.ring_size
        last = len(self.blocks) - 1
        for i, (block, cross) in enumerate(zip(self.blocks, cache.cross, strict=True)):
            # The last layer's action-token output is never read: only its K/V are needed.
            x = block.decode(x, cross, cache.kv[i], slot, bias, cos, sin, last_only=i == last)
        return x[:, -1]

    def decode_state(self, cache: DecodeCache, obs: Tensor, timesteps: Tensor | int) -> Tensor:
        """Append the state token of the current step (with the previous step's action token
        before it); return the action mean (B, act_dim)."""
        if cache.awaiting_action:
            raise RuntimeError("act() called twice in a row: call observe_action() in between")
        step_embedding = self.step_embedding(timesteps)
        token = _linear(self.state_embed, obs)
        if step_embedding is not None:
            token = token + step_embedding
        if cache.pending_action is None:  # the first step (or a one-step context): no action
            x = token[:, None]
        else:
            x = torch.stack([cache.pending_action, token], dim=1)
        if self.training:
            x = self.drop(x)
        if self.context_steps == 1:
            # A state token sees only itself: no past token, no K/V ring, no action token.
            for block, cross in zip(self.blocks, cache.cross, strict=True):
                x = block.decode_alone(x, cross)
            hidden = x[:, -1]
        else:
            hidden = self._decode_chunk(cache, x)
        cache.step_embedding, cache.pending_action = step_embedding, None
        cache.awaiting_action = True
        cache.step += 1
        return self.head(hidden)

    def decode_action(self, cache: DecodeCache, actions: Tensor) -> None:
        """Embed the action token of the current step (its timestep is the state token's); it
        goes through the layers with the next state token."""
        if not cache.awaiting_action:
            raise RuntimeError("observe_action() called before act() for this step")
        cache.awaiting_action = False
        if self.context_steps == 1:  # no later token attends to it
            return
        token = _linear(self.action_embed, actions.to(cache.kv.dtype))
        if cache.step_embedding is not None:
            token = token + cache.step_embedding
        cache.pending_action = token
