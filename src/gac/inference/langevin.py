"""Short-run Langevin dynamics on latent plans z0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

EnergyFn = Callable[[Tensor], Tensor]


@contextmanager
def eval_mode(model: nn.Module | None) -> Iterator[None]:
    """Run with dropout off (a sampler must see one fixed energy), restoring the flag after."""
    if model is None:
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def standard_normal(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) noise shaped like ``like``, drawn on the generator's own device (so a CPU
    generator also drives CUDA runs, reproducibly) and moved to ``like``'s device."""
    device = generator.device if generator is not None else like.device
    eps = torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype)
    return eps.to(like.device)


def energy_grad(energy_fn: EnergyFn, z: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample energies (B,) and the gradient of their sum with respect to z only: no
    gradient reaches (or accumulates in) the model's parameters."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        energy = energy_fn(z)
        (grad,) = torch.autograd.grad(energy.sum(), z)
    return energy.detach(), grad


def langevin(
    energy_fn: EnergyFn,
    z0: Tensor,
    n_steps: int,
    step_size: float,
    noise: bool | float = True,
    generator: torch.Generator | None = None,
    model: nn.Module | None = None,
) -> Tensor:
    """z <- z - (s^2 / 2) grad E(z) + noise * s * eps, ``n_steps`` times from z0; returns the
    last z (detached). ``noise`` True/1 is Langevin dynamics; False/0 is gradient descent (no
    random numbers drawn); in between, a colder sampler. ``energy_fn`` maps z (B, ...) to
    per-sample energies (B,). ``model``, when given, is put in eval mode for the duration.
    Works under ``torch.no_grad`` (gradients are re-enabled locally) but not under
    ``torch.inference_mode``."""
    z = z0.detach()
    half_s2 = 0.5 * step_size**2
    with eval_mode(model):
        for _ in range(n_steps):
            _, grad = energy_grad(energy_fn, z)
            z = z - half_s2 * grad
            if noise:
                z = z + float(noise) * step_size * standard_normal(z, generator)
    return z.detach()
