"""Incremental (KV-cached) decoding must match re-encoding the whole history."""

import pytest
import torch

from gac.config import ModelConfig
from gac.model import GACModel

K = 4  # context steps


def make_model(prior: str = "mlp", **overrides) -> GACModel:
    torch.manual_seed(0)
    shape = dict(obs_dim=5, act_dim=3, n_latent=4, d_model=32, n_heads=2, n_layers=2,
                 context_steps=K, max_timestep=10, prior=prior, unet_dim=8,
                 mlp_hidden=64, return_hidden=32, dropout=0.1)
    cfg = ModelConfig(**{**shape, **overrides})
    model = GACModel(cfg)
    model.set_normalisation(torch.randn(5), torch.rand(5) + 0.5, 100.0)
    return model.eval()


@pytest.mark.parametrize("prior", ["unet", "mlp", "identity"])
def test_cached_matches_uncached_beyond_the_band(prior):
    model = make_model(prior)
    g = torch.Generator().manual_seed(1)
    b, steps = 3, 3 * K + 2  # longer than the band and than the timestep table (clamping)
    obs = 3 * torch.randn(b, steps, 5, generator=g)
    actions = torch.rand(b, steps, 3, generator=g) * 2 - 1
    timesteps = torch.arange(steps).expand(b, steps)
    z = model.prior(torch.randn(b, 4, 32, generator=g))

    cache = model.start_episode(z)
    for t in range(steps):
        cached = model.act(cache, obs[:, t], t)
        reference = model.act_uncached(obs[:, : t + 1], actions[:, :t], timesteps[:, : t + 1], z)
        assert cached.shape == (b, 3)
        assert torch.allclose(cached, reference, atol=1e-5, rtol=0), f"step {t}"
        model.observe_action(cache, actions[:, t])
    assert cache.keys.shape[3] == 2 * K  # memory bounded by the band, not the episode


def test_cached_matches_uncached_without_timestep_embedding():
    model = make_model("identity", timestep_embedding=False)
    g = torch.Generator().manual_seed(2)
    obs, actions = torch.randn(2, 10, 5, generator=g), torch.rand(2, 10, 3, generator=g)
    ts = torch.arange(10).expand(2, 10)
    z = torch.randn(2, 4, 32, generator=g)
    cache = model.start_episode(z)
    for t in range(10):
        ref = model.act_uncached(obs[:, : t + 1], actions[:, : t + 1], ts[:, : t + 1], z)
        assert torch.allclose(model.act(cache, obs[:, t], torch.full((2,), t)), ref, atol=1e-5)
        model.observe_action(cache, actions[:, t])


def test_cached_decoding_checks_token_order():
    model = make_model()
    cache = model.start_episode(torch.randn(1, 4, 32))
    with pytest.raises(RuntimeError):
        model.observe_action(cache, torch.zeros(1, 3))
    model.act(cache, torch.zeros(1, 5), 0)
    with pytest.raises(RuntimeError):
        model.act(cache, torch.zeros(1, 5), 1)


def test_act_uncached_matches_action_means():
    model = make_model()
    obs, actions = torch.randn(2, 7, 5), torch.rand(2, 7, 3)
    ts = torch.arange(7).expand(2, 7)
    z = torch.randn(2, 4, 32)
    with torch.no_grad():
        full = model.action_means(obs, actions, ts, z)
    assert torch.allclose(model.act_uncached(obs, actions, ts, z), full[:, -1], atol=1e-6)


# ---- the chunked decoder: [a_{t-1}, s_t] go through the layers together -----------------------

def rollout_gap(model: GACModel, steps: int, batch: int = 2, dtype=torch.float32,
                int_timesteps: bool = True) -> float:
    """Largest |cached - uncached| action mean over an episode of ``steps`` steps."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(batch, steps, cfg.obs_dim, generator=g, dtype=dtype)
    actions = torch.rand(batch, steps, cfg.act_dim, generator=g, dtype=dtype) * 2 - 1
    timesteps = torch.arange(steps).expand(batch, steps)
    z = torch.randn(batch, cfg.n_latent, cfg.d_model, generator=g, dtype=dtype)
    cache = model.start_episode(z)
    gap = 0.0
    for t in range(steps):
        cached = model.act(cache, obs[:, t], t if int_timesteps else timesteps[:, t])
        reference = model.act_uncached(obs[:, : t + 1], actions[:, :t], timesteps[:, : t + 1], z)
        gap = max(gap, (cached - reference).abs().max().item())
        model.observe_action(cache, actions[:, t])
    return gap


@pytest.mark.parametrize("n_heads", [1, 2, 4])  # one head takes the plain-matmul attention path
@pytest.mark.parametrize("n_layers", [1, 3])
def test_cached_matches_uncached_for_head_and_layer_counts(n_heads, n_layers):
    model = make_model("identity", n_heads=n_heads, n_layers=n_layers)
    # 5K steps: the ring wraps several times, and the attention bias cycles with period K.
    assert rollout_gap(model, 5 * K + 1) < 1e-5


@pytest.mark.parametrize("context_steps", [1, 2, 5])
def test_cached_matches_uncached_for_band_widths(context_steps):
    model = make_model("identity", context_steps=context_steps)
    assert rollout_gap(model, 4 * context_steps + 3, batch=1) < 1e-5


@pytest.mark.parametrize("context_steps", [1, K])
def test_cached_matches_uncached_with_an_mlp_state_encoder(context_steps):
    model = make_model("mlp", state_encoder="mlp", state_hidden=16, context_steps=context_steps)
    assert isinstance(model.transformer.state_embed, torch.nn.Sequential)
    assert rollout_gap(model, 3 * context_steps + 2) < 1e-5


def test_cached_decoding_is_exact_up_to_rounding_in_float64():
    """Float64 leaves no room for a mask or position off by one to hide in the tolerance."""
    model = make_model("identity").double()
    assert rollout_gap(model, 3 * K + 2, dtype=torch.float64) < 1e-12


def test_int_and_tensor_timesteps_decode_alike():
    model = make_model("identity")
    assert rollout_gap(model, 12, int_timesteps=True) < 1e-5
    assert rollout_gap(model, 12, int_timesteps=False) < 1e-5
    z, obs = torch.randn(2, 4, 32), torch.randn(2, 5)
    by_int = model.act(model.start_episode(z), obs, 3)
    by_tensor = model.act(model.start_episode(z), obs, torch.tensor([3, 3]))
    assert torch.equal(by_int, by_tensor)


def test_observed_action_is_read_when_observed():
    """The action token is deferred to the next step; later in-place edits must not leak in."""
    model = make_model("identity")
    z, obs = torch.randn(2, 4, 32), torch.randn(2, 3, 5)
    means = []
    for mutate in (False, True):
        cache = model.start_episode(z)
        action = model.act(cache, obs[:, 0], 0)
        model.observe_action(cache, action)
        if mutate:
            action.fill_(0.5)
        means.append(model.act(cache, obs[:, 1], 1))
    assert torch.equal(means[0], means[1])


def test_decode_memory_stays_bounded():
    model = make_model("identity")
    z = torch.randn(2, 4, 32)
    cache = model.start_episode(z)
    kv = cache.kv
    for t in range(6 * K):
        model.observe_action(cache, model.act(cache, torch.randn(2, 5), t))
    assert cache.kv is kv  # updated in place, never regrown
    assert cache.keys.shape == cache.values.shape == (2, 2, 2, 2 * K, 16)


def test_periodic_attention_bias_matches_a_fresh_build():
    tables = make_model().start_episode(torch.randn(1, 4, 32)).tables
    for step in range(4 * K):
        assert torch.equal(tables.bias(step), tables._build_bias(step)), step


def test_folded_self_attention_is_the_value_then_output_projection():
    from gac.model.decoding import fold_alone

    attn = make_model(context_steps=1).transformer.blocks[0].attn
    x = torch.randn(7, 1, 32)
    d = 32
    with torch.no_grad():
        v = torch.nn.functional.linear(x, attn.qkv.weight[2 * d:], attn.qkv.bias[2 * d:])
        assert torch.allclose(torch.nn.functional.linear(x, *fold_alone(attn)), attn.proj(v),
                              atol=1e-6)


@pytest.mark.parametrize("context_steps", [1, K])
def test_cached_matches_uncached_with_trained_layer_norms(context_steps):
    # Fresh LayerNorms are the identity (gamma 1, beta 0), so a wrong fold of their affine
    # part into the next linear would go unseen; random ones make every fold count.
    model = make_model("identity", context_steps=context_steps)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for module in model.transformer.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g))
    assert rollout_gap(model, 3 * context_steps + 2) < 1e-5


@pytest.mark.parametrize("context_steps", [1, K])
def test_a_replan_cache_reuses_the_plan_free_folds_and_decodes_as_a_fresh_one(context_steps):
    """start_episode(z, like=old) at a re-plan folds only the plans again: its actions are those
    of a cache started fresh with z, to the bit, and its plan-free folds are the old ones."""
    model = make_model(context_steps=context_steps, state_encoder="mlp")
    g = torch.Generator().manual_seed(3)
    old = model.start_episode(torch.randn(2, 4, 32, generator=g))
    z = torch.randn(2, 4, 32, generator=g)
    fresh, reused = model.start_episode(z), model.start_episode(z, like=old)
    assert reused.embed is old.embed
    if context_steps == 1:
        assert reused.head is old.head and reused.alone[0].up is old.alone[0].up
    for t in range(6):
        obs, action = torch.randn(2, 5, generator=g), torch.rand(2, 3, generator=g)
        assert torch.equal(model.act(fresh, obs, t), model.act(reused, obs, t))
        model.observe_action(fresh, action)
        model.observe_action(reused, action)
