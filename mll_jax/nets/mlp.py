"""`mlp`: dense ReLU layers, then the heads."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from mll_jax.nets.registry import register

__all__ = ["MLP"]


@register("mlp")
class MLP(nnx.Module):
    def __init__(self, num_heads: int, in_features: int = 784, hidden: Sequence[int] = (256,), *, rngs: nnx.Rngs):
        sizes = [in_features, *hidden]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nnx.Linear(sizes[-1], num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = jax.nn.relu(layer(x))
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
