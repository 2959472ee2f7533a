"""The GAC generative model: prior U(z0), causal trajectory transformer, return head."""

from gac.model.decoding import DecodeCache
from gac.model.flops import flops_per_update, forward_flops, transformer_flops_per_token
from gac.model.gac import GACModel
from gac.model.prior import build_prior

__all__ = [
    "DecodeCache",
    "GACModel",
    "build_prior",
    "flops_per_update",
    "forward_flops",
    "transformer_flops_per_token",
]
