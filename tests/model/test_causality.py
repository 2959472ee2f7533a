"""What the action prediction at step t may and may not see."""

import torch

from gac.config import ModelConfig
from gac.model import GACModel


def make_model(n_layers: int, context_steps: int) -> GACModel:
    torch.manual_seed(0)
    cfg = ModelConfig(obs_dim=4, act_dim=2, d_model=32, n_heads=2, n_layers=n_layers,
                      context_steps=context_steps, max_timestep=50, prior="identity",
                      return_hidden=16)
    return GACModel(cfg).eval()


def inputs(steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(2, steps, 4, generator=g)
    actions = torch.rand(2, steps, 2, generator=g) * 2 - 1
    return obs, actions, torch.arange(steps).expand(2, steps), torch.randn(2, 4, 32, generator=g)


def means(model, obs, actions, ts, z):
    with torch.no_grad():
        return model.action_means(obs, actions, ts, z)


def test_prediction_ignores_current_action_and_future_but_sees_past_action():
    model = make_model(n_layers=2, context_steps=4)
    obs, actions, ts, z = inputs(10)
    t = 5
    base = means(model, obs, actions, ts, z)

    future_actions, future_obs = actions.clone(), obs.clone()
    future_actions[:, t:] = -future_actions[:, t:]  # a_t and everything after it
    future_obs[:, t + 1:] += 5.0
    changed = means(model, future_obs, future_actions, ts, z)
    assert torch.allclose(changed[:, : t + 1], base[:, : t + 1], atol=1e-6)

    past = actions.clone()
    past[:, t - 1] = -past[:, t - 1]
    assert (means(model, obs, past, ts, z)[:, t] - base[:, t]).abs().max() > 1e-5


def _influence(model, step: int, t: int, steps: int = 20) -> float:
    """How much perturbing the state and action of ``step`` moves the prediction at t."""
    obs, actions, ts, z = inputs(steps, seed=3)
    base = means(model, obs, actions, ts, z)[:, t]
    obs2, actions2 = obs.clone(), actions.clone()
    obs2[:, step] += 5.0
    actions2[:, step] = -actions2[:, step]
    return float((means(model, obs2, actions2, ts, z)[:, t] - base).abs().max())


def test_band_one_layer_sees_exactly_k_steps():
    k, t = 3, 12
    model = make_model(n_layers=1, context_steps=k)
    assert _influence(model, t - k, t) == 0.0  # just outside the band
    assert _influence(model, t - k + 1, t) > 1e-5  # oldest step inside it


def test_band_receptive_field_grows_with_depth():
    k, t = 3, 15
    model = make_model(n_layers=2, context_steps=k)
    field = model.receptive_field  # n_layers * (K - 1) past steps
    assert field == 4
    assert _influence(model, t - field - 1, t) == 0.0
    assert _influence(model, t - field, t) > 1e-7
