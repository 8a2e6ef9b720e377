"""`linear`: heads only, over features a shared backbone computes."""

from __future__ import annotations

import jax
from flax import nnx

from mll_jax.nets.registry import register

__all__ = ["LinearHeads"]


@register("linear")
class LinearHeads(nnx.Module):
    """Heads only: a linear layer over features computed elsewhere (a shared backbone)."""

    def __init__(self, num_heads: int, in_features: int, *, rngs: nnx.Rngs):
        self.head = nnx.Linear(in_features, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
