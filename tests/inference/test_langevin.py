"""Langevin posterior sampling on a fixed model."""

import pytest
import torch

from gac.config import ModelConfig
from gac.inference import langevin, posterior_energy, sample_posterior
from gac.model import GACModel


def make_model(prior: str = "mlp") -> GACModel:
    torch.manual_seed(0)
    cfg = ModelConfig(obs_dim=5, act_dim=3, d_model=32, n_heads=2, n_layers=2, context_steps=4,
                      max_timestep=50, prior=prior, unet_dim=8, mlp_hidden=64,
                      return_hidden=32, return_condition_s0=True, dropout=0.1)
    model = GACModel(cfg)
    model.set_normalisation(torch.zeros(5), torch.ones(5), 10.0)
    return model


def make_batch(b: int = 6, steps: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, steps)
    mask[:, :2] = 0  # unscored history before the window
    return dict(
        obs=torch.randn(b, steps, 5, generator=g),
        actions=torch.rand(b, steps, 3, generator=g) * 2 - 1,
        timesteps=torch.arange(steps).expand(b, steps) + 10,
        loss_mask=mask,
        s0=torch.randn(b, 5, generator=g),
        returns=torch.randn(b, generator=g) * 20,
        traj_scale=torch.full((b,), 50 / 6),
    )


def bad_start(b: int = 6, seed: int = 1) -> torch.Tensor:
    return 3 * torch.randn(b, 4, 32, generator=torch.Generator().manual_seed(seed))


def energy(model, z0, data):
    with torch.no_grad():
        return posterior_energy(model, z0, data)


@pytest.mark.parametrize("prior", ["unet", "mlp", "identity"])
def test_noiseless_langevin_descends_the_posterior_energy(prior):
    model, data = make_model(prior).eval(), make_batch()
    z = bad_start()
    energies = [energy(model, z, data)]
    for _ in range(15):
        z = sample_posterior(model, z, data, n_steps=1, step_size=0.3, noise=False)
        energies.append(energy(model, z, data))
    energies = torch.stack(energies)  # (steps + 1, B)
    assert (energies[1:] <= energies[:-1] + 1e-3).all()
    assert (energies[-1] < 0.5 * energies[0]).all()


def test_noisy_langevin_lowers_mean_energy_from_a_bad_start():
    model, data = make_model().eval(), make_batch()
    z = bad_start()
    after = sample_posterior(model, z, data, 50, 0.3, torch.Generator().manual_seed(0))
    assert energy(model, after, data).mean() < energy(model, z, data).mean()


def test_traj_scale_weights_the_action_term():
    model, data = make_model().eval(), make_batch()
    z0 = bad_start()
    one, two = (energy_with(model, z0, data, s) for s in (1.0, 2.0))
    no_actions = {**data, "loss_mask": torch.zeros_like(data["loss_mask"])}
    base = energy_with(model, z0, no_actions, 1.0)
    assert torch.allclose(two - base, 2 * (one - base), rtol=1e-4)
    # The batch's own traj_scale is used when the argument is left out.
    assert torch.allclose(energy(model, z0, data),
                          energy_with(model, z0, data, data["traj_scale"]))


def energy_with(model, z0, data, scale):
    with torch.no_grad():
        return posterior_energy(model, z0, data, scale)


def test_sampling_leaves_parameters_alone_and_restores_training_flag():
    model, data = make_model().train(), make_batch()
    seen = []

    def energy_fn(z):
        seen.append(model.training)
        return posterior_energy(model, z, data)

    langevin(energy_fn, bad_start(), 3, 0.3, generator=torch.Generator().manual_seed(0),
             model=model)
    assert seen == [False] * 3 and model.training
    sample_posterior(model, bad_start(), data, 2, 0.3)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_langevin_is_deterministic_under_a_generator():
    model, data = make_model(), make_batch()
    runs = [sample_posterior(model, bad_start(), data, 5, 0.3, torch.Generator().manual_seed(7))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = sample_posterior(model, bad_start(), data, 5, 0.3, torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0], other)


def test_langevin_works_under_no_grad():
    model, data = make_model(), make_batch()
    with torch.no_grad():
        z = sample_posterior(model, bad_start(), data, 2, 0.3, noise=False)
    assert z.shape == (6, 4, 32) and not z.requires_grad


def test_noise_scale_interpolates_between_descent_and_langevin():
    # One step on E = |z|^2 / 2 from the same generator state: the noise term is linear in the
    # scale, so a half-scale step lies halfway between gradient descent and full Langevin.
    z0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))

    def step(noise: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(7)
        return langevin(lambda z: 0.5 * z.pow(2).sum(-1), z0, 1, 0.5, noise=noise, generator=gen)

    map_, half, full = step(0.0), step(0.5), step(1.0)
    torch.testing.assert_close(map_, z0 * (1 - 0.5**2 / 2))
    torch.testing.assert_close(half - map_, 0.5 * (full - map_))
    assert not torch.allclose(full, map_)
