"""train.chain_grad=shared: the parameters' gradient and the chains' last move from one pass."""

from __future__ import annotations

import pytest
import torch

from gac.config import apply_overrides, preset
from gac.data.hdf5 import load_hdf5
from gac.train.offline import Trainer

TINY = ["model.d_model=32", "model.n_layers=2", "model.context_steps=4", "train.batch_size=8",
        "train.window=8", "train.warmup_steps=2", "train.steps=6", "train.grad_clip=1e9"]


def make(store, *extra):
    cfg = apply_overrides(preset("pointmaze-umaze-goal"), [*TINY, *extra])
    return Trainer(cfg, store, None, return_scale=100.0)


@pytest.fixture(scope="module")
def store(tiny_maze_path):
    return load_hdf5(tiny_maze_path)


def test_shared_chains_move_as_the_exact_ones(store):
    """Same batch, same noise: the shared pass's last Langevin move is the exact sampler's."""
    opts = ["train.langevin_steps=2", "train.langevin_noise=0.5", "train.posterior_temperature=2"]
    exact, shared = make(store, *opts), make(store, *opts, "train.chain_grad=shared")
    before = exact.chains.z.clone()
    exact.update()
    shared.update()
    assert not torch.equal(exact.chains.z, before)
    torch.testing.assert_close(shared.chains.z, exact.chains.z, rtol=1e-4, atol=1e-5)


def test_shared_parameter_gradient_is_the_loss_gradient_before_the_last_move(store):
    shared = make(store, "train.langevin_steps=1", "train.chain_grad=shared")
    ref = make(store, "train.langevin_steps=1")
    batch = ref.batch()  # the batch the shared trainer draws (same seed)
    z0 = ref.chains.get(batch["episode_index"])
    z = ref.model.prior(z0)
    t = ref.cfg.train
    loss = ref.model.step_action_nll(batch, z) + t.return_weight * \
        ref.model.return_nll(z, batch["s0"], batch["returns"]).mean()
    loss.backward()
    metrics = shared.update()
    assert metrics["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    for (name, p), q in zip(shared.model.named_parameters(), ref.model.parameters(), strict=True):
        if q.grad is None:
            assert p.grad is None or not p.grad.any(), name
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_shared_pass_needs_a_langevin_step(store):
    with pytest.raises(ValueError, match="chain_grad"):
        make(store, "train.langevin_steps=0", "train.chain_grad=shared")
