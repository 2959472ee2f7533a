"""Persistent posterior chains: one z0 per training trajectory, warm-started at every visit.

With persistent chains a couple of Langevin steps per update suffice (LPT); the chain state is
training state, so it is saved in checkpoints, and it grows when online episodes are added.
"""

from __future__ import annotations

import torch


class PosteriorChains:
    def __init__(self, n: int, n_latent: int, d: int, generator: torch.Generator | None = None):
        self.z = torch.randn(n, n_latent, d, generator=generator)

    def __len__(self) -> int:
        return len(self.z)

    def get(self, idx: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        return self.z[idx.cpu()].to(device)

    def set(self, idx: torch.Tensor, z: torch.Tensor) -> None:
        # With sampling by replacement an index may repeat in a batch; the last write wins.
        self.z[idx.cpu()] = z.detach().to(self.z.device, self.z.dtype)

    def grow(self, n_new: int, generator: torch.Generator | None = None) -> None:
        """Start chains for trajectories appended to the store (from the prior)."""
        fresh = torch.randn(n_new, *self.z.shape[1:], generator=generator)
        self.z = torch.cat([self.z, fresh])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"z": self.z.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.z = state["z"].clone()
