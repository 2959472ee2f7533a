"""Incremental (KV-cached) decoding must match re-encoding the whole history."""

import pytest
import torch

from gac.config import ModelConfig
from gac.model import GACModel

K = 4  # context steps


def make_model(prior: str = "mlp", **overrides) -> GACModel:
    torch.manual_seed(0)
    cfg = ModelConfig(obs_dim=5, act_dim=3, n_latent=4, d_model=32, n_heads=2, n_layers=2,
                      context_steps=K, max_timestep=10, prior=prior, unet_dim=8,
                      mlp_hidden=64, return_hidden=32, dropout=0.1, **overrides)
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
