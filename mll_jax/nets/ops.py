"""Small functions several architectures share."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["unit_norm"]


def unit_norm(x: jax.Array) -> jax.Array:
    """`x` scaled to unit L2 norm along the last axis (a zero vector stays zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
