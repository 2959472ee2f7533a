"""Incremental decoding of the trajectory transformer: one environment step at a time.

``start`` / ``decode_state`` / ``decode_action`` keep rotated keys and values in a ring buffer
of 2K slots per layer, so memory is bounded however long the episode; RoPE uses absolute token
positions, so a cached key never needs re-rotating. Decoding cost is per-op overhead more than
FLOPs, so each environment step makes one pass through the layers: ``decode_action`` only
embeds the action, and the next ``decode_state`` runs the chunk [a_{t-1}, s_t] through every
layer at once (in the last layer only s_t's output is computed). The actions equal those of
the transformer's ``forward`` on the whole history (tests/model/test_decoding.py).

The functions here read the transformer's weights; the transformer knows nothing of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gac.model.transformer import (
    Block,
    CrossAttention,
    SelfAttention,
    TrajectoryTransformer,
    rope_tables,
)


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
    # One-step context only: per layer, the block as ``fold_layer_alone`` folds it; empty
    # otherwise.
    alone: list[AloneLayer]
    head: tuple[Tensor, Tensor] | None  # one-step context only: ``fold_head``
    head_eps: float  # the final LayerNorm's
    embed: tuple[Tensor, Tensor]  # the observation normalisation and the state embedding's
    # first linear, folded (``fold_embedding``): raw observations go straight in
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


# ---- one layer ----------------------------------------------------------------------------
def _self_attention(attn: SelfAttention, x: Tensor, kv: Tensor, slot: int, bias: Tensor,
                    cos: Tensor, sin: Tensor, last_only: bool) -> Tensor:
    """Chunk x (B, T, d) at consecutive positions: attend to the ring and causally within
    the chunk, then store the chunk's K/V in slots ``slot``.. of the ring. kv (B, R + 2, 2d)
    is the ring of R slots and two staging slots; cos, sin from ``DecodeTables.rope``.
    Returns (B, T, d), or only the last row (B, 1, d) when ``last_only``."""
    t, d = x.shape[1], x.shape[2]
    ring = kv.shape[1] - 2
    qkv = _linear(attn.qkv, x)  # (B, T, 3d)
    qk = qkv[..., : 2 * d]
    swapped = qk.unflatten(-1, (2 * attn.n_heads, 2, -1)).flip(-2).flatten(2)
    qk.mul_(cos).addcmul_(swapped, sin)  # RoPE on q and k, in place
    q, new_kv = qkv[..., :d], qkv[..., d:]
    kv[:, ring: ring + t] = new_kv  # stage: the chunk may need the ring slots it overwrites
    if last_only:
        q, bias = q[:, -1:], bias[-1:]
    keys = kv[:, : ring + t]
    y = _ring_attention(q, keys[..., :d], keys[..., d:], bias, attn.n_heads)
    kv[:, slot: slot + t] = new_kv
    return _linear(attn.proj, y)


def fold_cross(cross: CrossAttention, z: Tensor) -> FoldedCross:
    """For fixed z, fold the query and output projections into z's keys and values:
    scores_h = (x W_qh^T + b_qh) k_h^T / sqrt(hd) = x (W_qh^T k_h^T / sqrt(hd)) + b_qh k_h^T
    / sqrt(hd) and out = sum_h p_h v_h W_ph^T + b_p: two small matmuls per decoded token
    instead of two d x d projections (equal up to float rounding)."""
    k, v = cross.latent_kv(z)  # (B, H, N, hd)
    b, h, n, hd = k.shape
    scale = hd**-0.5
    w_q = cross.q.weight.view(h, hd, -1)  # (H, hd, d)
    keys = torch.einsum("hjd,bhnj->bdhn", w_q, k).reshape(b, -1, h * n) * scale
    bias = torch.einsum("hj,bhnj->bhn", cross.q.bias.view(h, hd), k).reshape(b, 1, h * n)
    values = torch.einsum("bhnj,dhj->bhnd", v, cross.proj.weight.view(-1, h, hd))
    return FoldedCross(keys, bias * scale, values.reshape(b, h * n, -1))


def _cross_attention(x: Tensor, folded: FoldedCross, n_heads: int, proj_bias: Tensor) -> Tensor:
    """Cross-attention of x (B, T, d), already LayerNormed, with the folded weights."""
    scores = torch.baddbmm(folded.bias, x, folded.keys)  # (B, T, H*N)
    if n_heads == 1:
        weights = scores.softmax(-1)
    else:
        weights = scores.unflatten(-1, (n_heads, -1)).softmax(-1).flatten(2)
    return torch.baddbmm(proj_bias, weights, folded.values)


def _dropout(block: Block, x: Tensor) -> Tensor:
    return block.drop(x) if block.training else x  # skip the call in eval mode


def _block(block: Block, x: Tensor, cross: FoldedCross, kv: Tensor, slot: int, bias: Tensor,
           cos: Tensor, sin: Tensor, last_only: bool) -> Tensor:
    """``Block.forward`` for a chunk x (B, T, d) of new tokens against the cached ring; with
    ``last_only`` only the last token's output is computed (all K/V still are)."""
    y = _self_attention(block.attn, _layer_norm(block.ln1, x), kv, slot, bias, cos, sin,
                        last_only)
    return _block_rest(block, (x[:, -1:] if last_only else x) + _dropout(block, y), cross)


def fold_alone(attn: SelfAttention) -> tuple[Tensor, Tensor]:
    """For tokens that attend to themselves only (a one-step context's state tokens), softmax
    over one key is 1, so self-attention is the output projection of the value projection:
    proj(v(x)) = x (W_p W_v)^T + (W_p b_v + b_p), one d x d linear instead of two (equal up to
    float rounding; 1.16x per 16-env decoding step on pointmaze-umaze-goal, benchmarks/compile.py)."""
    d = attn.proj.weight.shape[0]
    w_v, b_v = attn.qkv.weight[2 * d:], attn.qkv.bias[2 * d:]
    w_p, b_p = attn.proj.weight, attn.proj.bias
    return w_p @ w_v, torch.addmv(b_p, w_p, b_v)


def _fold_norm(ln: nn.LayerNorm, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """linear(ln(x)) = x_hat (W diag(gamma))^T + (W beta + b), x_hat the LayerNorm without its
    affine part: the affine folds into the linear that follows. Returned as (W^T, b) for
    ``_affine``."""
    return _transposed(weight * ln.weight, torch.addmv(bias, weight, ln.bias))


def _transposed(weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    # addmm on a contiguous (in, out) weight skips F.linear's transpose view: about 1.4x per
    # small (16 x 64 -> 256) product on one CPU thread.
    return weight.t().contiguous(), bias


def _affine(x: Tensor, wb: tuple[Tensor, Tensor]) -> Tensor:
    return torch.addmm(wb[1], x, wb[0])


@dataclass
class AloneLayer:
    """One block for tokens that attend to themselves only, folded once per episode: each
    LayerNorm's affine part folded into what follows it, the self-attention into one linear
    (``fold_alone``), the cross-attention with the plans (``fold_cross``). A decoding step is
    then a dozen tensor ops per layer on (B, d) rows, with no module in between."""

    attn: tuple[Tensor, Tensor]  # ln1 and the self-attention, (W^T, b)
    cross: FoldedCross  # ln2 folded into its keys and bias
    up: tuple[Tensor, Tensor]  # ln3 and the MLP's first linear
    down: tuple[Tensor, Tensor]
    eps: tuple[float, float, float]  # ln1, ln2, ln3
    approximate: str  # the MLP's GELU
    proj_bias: Tensor  # the cross-attention's output bias
    n_heads: int  # of the cross-attention


def _fold_norm_cross(ln2: nn.LayerNorm, cross: FoldedCross) -> FoldedCross:
    """The cross-attention's LayerNorm affine folded into its keys and bias:
    scores = (x_hat gamma + beta) @ keys + bias."""
    return FoldedCross(cross.keys * ln2.weight[:, None],
                       cross.bias + torch.einsum("d,bdk->bk", ln2.bias, cross.keys)[:, None],
                       cross.values)


def fold_layer_alone(block: Block, cross: FoldedCross) -> AloneLayer:
    up, act, down = block.mlp
    ln2 = block.ln2
    return AloneLayer(
        attn=_fold_norm(block.ln1, *fold_alone(block.attn)),
        cross=_fold_norm_cross(ln2, cross),
        up=_fold_norm(block.ln3, up.weight, up.bias),
        down=_transposed(down.weight, down.bias),
        eps=(block.ln1.eps, ln2.eps, block.ln3.eps),
        approximate=act.approximate,
        proj_bias=block.cross.proj.bias,
        n_heads=block.cross.n_heads,
    )


def _block_alone(x: Tensor, f: AloneLayer, drop: nn.Module | None) -> Tensor:
    """``Block.forward`` for tokens x (B, d) that attend to themselves only, with the block
    folded by ``fold_layer_alone`` (``drop``: the block's dropout in training, else None).
    Only tensor ops: no module attribute lookups or tensor indexing, whose Python overhead
    cost about a tenth of a 16-env decoding step."""
    shape = x.shape[-1:]
    e1, e2, e3 = f.eps
    y = _affine(torch.layer_norm(x, shape, eps=e1), f.attn)
    x = x + (y if drop is None else drop(y))
    y = _cross_attention(torch.layer_norm(x, shape, eps=e2).unsqueeze(1), f.cross, f.n_heads,
                         f.proj_bias).squeeze(1)
    x = x + (y if drop is None else drop(y))
    h = F.gelu(_affine(torch.layer_norm(x, shape, eps=e3), f.up), approximate=f.approximate)
    y = _affine(h, f.down)
    return x + (y if drop is None else drop(y))


def fold_head(tf: TrajectoryTransformer) -> tuple[Tensor, Tensor]:
    """The final LayerNorm folded into the action head, for ``_head_alone``."""
    return _fold_norm(tf.ln_f, tf.action_head.weight, tf.action_head.bias)


def _head_alone(x: Tensor, head: tuple[Tensor, Tensor], eps: float) -> Tensor:
    return torch.tanh(_affine(torch.layer_norm(x, x.shape[-1:], eps=eps), head))


def _block_rest(block: Block, x: Tensor, cross: FoldedCross) -> Tensor:
    y = _cross_attention(_layer_norm(block.ln2, x), cross, block.cross.n_heads,
                         block.cross.proj.bias)
    x = x + _dropout(block, y)
    up, act, down = block.mlp
    h = F.gelu(_linear(up, _layer_norm(block.ln3, x)), approximate=act.approximate)
    return x + _dropout(block, _linear(down, h))


def fold_embedding(tf: TrajectoryTransformer, obs_mean: Tensor, obs_std: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """The observation normalisation folded into the state embedding's first linear, as
    (W^T, b) for ``_affine``: W ((o - mean) / std) + b = (W / std) o + (b - W (mean / std)).
    Two elementwise ops fewer per decoded step (equal up to float rounding)."""
    first = tf.state_embed if isinstance(tf.state_embed, nn.Linear) else tf.state_embed[0]
    weight = first.weight / obs_std
    return _transposed(weight, first.bias - weight @ obs_mean)


def _embed_raw(tf: TrajectoryTransformer, obs: Tensor, embed: tuple[Tensor, Tensor]) -> Tensor:
    """``tf.embed_state(normalised obs)`` from raw observations (B, obs_dim)."""
    x = _affine(obs if obs.dtype == embed[0].dtype else obs.to(embed[0].dtype), embed)
    if isinstance(tf.state_embed, nn.Linear):
        return x
    _, act, last = tf.state_embed  # the MLP encoder's GELU and second linear, as functions:
    # the same ops as the modules' calls, without their call overhead
    return F.linear(F.gelu(x, approximate=act.approximate), last.weight, last.bias)


# ---- the whole transformer ------------------------------------------------------------------
# Shared by every model of one shape: (context_steps, n_heads, head_dim, device, dtype).
_TABLES: dict[tuple, DecodeTables] = {}


def start(tf: TrajectoryTransformer, z: Tensor, obs_mean: Tensor, obs_std: Tensor,
          like: DecodeCache | None = None) -> DecodeCache:
    """A cache for plans z (B, N, d): cross-attention folded with z once (so an episode
    decodes with the weights it started with; so is a one-step context's self-attention), the
    observation statistics folded into the state embedding, empty K/V rings.

    ``like``: a cache this transformer started with the same weights (a re-plan within a
    rollout): its folds that do not depend on z are reused, the same tensors a new fold
    would compute; only the cross-attention is folded again, with the new plans."""
    key = (tf.context_steps, tf.n_heads, tf.head_dim, z.device, z.dtype)
    if key not in _TABLES:
        _TABLES[key] = DecodeTables(tf.context_steps, tf.n_heads, tf.head_dim, z.device, z.dtype)
    shape = (len(tf.blocks), z.shape[0], 2 * tf.context_steps + 2, 2 * tf.d_model)
    cross = [fold_cross(block.cross, z) for block in tf.blocks]
    one_step = tf.context_steps == 1
    if like is None:
        alone = ([fold_layer_alone(block, c) for block, c in zip(tf.blocks, cross, strict=True)]
                 if one_step else [])
        head = fold_head(tf) if one_step else None
        embed = fold_embedding(tf, obs_mean.to(z.dtype), obs_std.to(z.dtype))
    else:  # a re-plan: only the plans' folds are new
        alone = ([replace(layer, cross=_fold_norm_cross(block.ln2, c))
                  for block, layer, c in zip(tf.blocks, like.alone, cross, strict=True)]
                 if one_step else [])
        head, embed = like.head, like.embed
    return DecodeCache(
        cross=cross,
        alone=alone,
        head=head,
        head_eps=tf.ln_f.eps,
        embed=embed,
        kv=z.new_zeros(shape),
        tables=_TABLES[key],
        n_heads=tf.n_heads,
    )


def _decode_chunk(tf: TrajectoryTransformer, cache: DecodeCache, x: Tensor) -> Tensor:
    """Run chunk x (B, T, d) ending at the state token of step cache.step through the
    layers; return the state token's final hidden (B, d)."""
    end = 2 * cache.step + 1  # one past the state token's position
    first = end - x.shape[1]
    cos, sin = cache.tables.rope(first, end)
    bias = cache.tables.bias(cache.step)
    slot = (first + 1) % cache.ring_size
    last = len(tf.blocks) - 1
    for i, (block, cross) in enumerate(zip(tf.blocks, cache.cross, strict=True)):
        # The last layer's action-token output is never read: only its K/V are needed.
        x = _block(block, x, cross, cache.kv[i], slot, bias, cos, sin, last_only=i == last)
    return x[:, -1]


def decode_state(tf: TrajectoryTransformer, cache: DecodeCache, obs: Tensor,
                 timesteps: Tensor | int) -> Tensor:
    """Append the state token of the current step (raw obs (B, obs_dim): ``start`` folded the
    normalisation in), with the previous step's action token before it; return the action
    mean (B, act_dim)."""
    if cache.awaiting_action:
        raise RuntimeError("act() called twice in a row: call observe_action() in between")
    step_embedding = tf.step_embedding(timesteps)
    token = _embed_raw(tf, obs, cache.embed)
    if step_embedding is not None:
        token = token + step_embedding
    if cache.alone:
        # A one-step context: the state token sees only itself: no past token, no K/V ring,
        # no action token.
        x = tf.drop(token) if tf.training else token
        for block, alone in zip(tf.blocks, cache.alone, strict=True):
            x = _block_alone(x, alone, block.drop if block.training else None)
        action = _head_alone(x, cache.head, cache.head_eps)
    else:
        if cache.pending_action is None:  # the first step: no action before it
            x = token.unsqueeze(1)
        else:
            x = torch.stack([cache.pending_action, token], dim=1)
        if tf.training:
            x = tf.drop(x)
        action = tf.head(_decode_chunk(tf, cache, x))
    cache.step_embedding, cache.pending_action = step_embedding, None
    cache.awaiting_action = True
    cache.step += 1
    return action


def decode_action(tf: TrajectoryTransformer, cache: DecodeCache, actions: Tensor) -> None:
    """Embed the action token (B, act_dim) of the current step (its timestep is the state
    token's); it goes through the layers with the next state token."""
    if not cache.awaiting_action:
        raise RuntimeError("observe_action() called before act() for this step")
    cache.awaiting_action = False
    if tf.context_steps == 1:  # no later token attends to it
        return
    token = _linear(tf.action_embed, actions.to(cache.kv.dtype))
    if cache.step_embedding is not None:
        token = token + cache.step_embedding
    cache.pending_action = token
