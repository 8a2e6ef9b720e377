"""Input specs: how uint8 images become a model's input (shape, channels, dtype, normalisation).

A store may hold images of another size or channel count than a model was trained
on (a digit expert labelled on 64x64 RGB emoji): the model sees them as its spec's
shape, channels converted first (RGB to grey by ITU-R 601 luma, as PIL's "L"; grey
to RGB by repeating) and then resized (linear, antialiased when shrinking). Both
steps are linear, so their order does not change the result.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["LUMA", "preprocess", "spec_key", "to_shape"]

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights of R, G, B


def spec_key(input_spec: dict) -> tuple:
    """Hashable form of what preprocessing reads from an input spec (shape, mean, std): a static jit argument."""
    items = [(k, float(v)) for k, v in input_spec.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if input_spec.get("shape") is not None:
        items.append(("shape", tuple(int(s) for s in input_spec["shape"])))
    return tuple(sorted(items))


def to_shape(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Float images [N, h, w, c] as [N, *shape]: channels converted, then resized."""
    height, width, channels = shape
    have = x.shape[-1]
    if have != channels:
        if (have, channels) == (3, 1):
            x = x @ jnp.asarray(LUMA, x.dtype)[:, None]
        elif (have, channels) == (1, 3):
            x = jnp.broadcast_to(x, (*x.shape[:-1], 3))
        else:
            raise ValueError(
                f"images have {have} channels and the model takes {channels}; only grey (1) and RGB (3) convert: "
                "drop an alpha channel first (data.drawing.on_white)"
            )
    if x.shape[1:3] != (height, width):
        x = jax.image.resize(x, (x.shape[0], height, width, channels), method="linear", antialias=True)
    return x


def preprocess(images: jax.Array, spec: dict) -> jax.Array:
    """uint8 images -> float32 per the model's input spec (its shape, then scaled to [0, 1] and normalised)."""
    x = images.astype(jnp.float32) / 255.0
    if spec.get("shape") is not None:
        x = to_shape(x, tuple(spec["shape"]))
    return (x - spec.get("mean", 0.0)) / spec.get("std", 1.0)
