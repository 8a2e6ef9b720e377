"""Input specs: how uint8 images become a model's input (shape, dtype, normalisation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["preprocess", "spec_key"]


def spec_key(input_spec: dict) -> tuple:
    """Hashable form of the numeric part of an input spec (mean, std): a static jit argument."""
    return tuple(sorted((k, float(v)) for k, v in input_spec.items() if isinstance(v, int | float)))


def preprocess(images: jax.Array, spec: dict) -> jax.Array:
    """uint8 images -> float32 per the model's input spec (scale to [0, 1], then normalise)."""
    x = images.astype(jnp.float32) / 255.0
    return (x - spec.get("mean", 0.0)) / spec.get("std", 1.0)
