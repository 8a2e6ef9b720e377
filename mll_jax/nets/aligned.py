"""`aligned`: an image tower whose unit-norm output is scored against text embeddings held in its heads.

Its head j is `scale x` the unit text embedding of node j, so logit j is a scaled
cosine between the image and that node's text (`hub.general` trains the tower
LiT-style; `hub.clip_general` fills the same kind of heads from CLIP's text tower).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax.nets.ops import unit_norm
from mll_jax.nets.registry import ARCHITECTURES, register

__all__ = ["Aligned", "config", "set_text_heads", "text_scores"]

_TOWER = {"channels": [32, 64], "dense": 256}


@register("aligned")
class Aligned(nnx.Module):
    """An image tower (any registered architecture, `dim` outputs), unit-normed, then the text heads."""

    def __init__(self, num_heads: int, tower_arch: str = "cnn", tower: dict | None = None, dim: int = 384, *, rngs):
        self.tower = ARCHITECTURES[tower_arch](dim, **(_TOWER if tower is None else tower), rngs=rngs)
        self.head = nnx.Linear(dim, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        return unit_norm(self.tower(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


def config(tower: dict | None) -> dict:
    """The `aligned` config of a tower config (None: `_TOWER`)."""
    return {"tower": _TOWER if tower is None else tower}


def set_text_heads(model: nnx.Module, text: np.ndarray, scale: float) -> None:
    """Heads = `scale` x unit text embeddings [num_heads, dim] (zero bias): logit j is scaled cosine to text j."""
    kernel = scale * np.asarray(text, np.float32).T
    if tuple(model.head.kernel.shape) != kernel.shape:
        raise ValueError(f"text embeddings {text.shape} do not fit heads of kernel {tuple(model.head.kernel.shape)}")
    model.head.kernel[...] = jnp.asarray(kernel)
    model.head.bias[...] = jnp.zeros(kernel.shape[1], jnp.float32)


def text_scores(model: Aligned, images: jax.Array, text: np.ndarray) -> jax.Array:
    """Scaled cosine of preprocessed images against any unit text embeddings [T, dim], e.g. `text.embed(names)`:
    zero-shot by name, with no matching to nodes."""
    scale = jnp.linalg.norm(model.head.kernel[...], axis=0).mean()
    return scale * model.features(images) @ jnp.asarray(text).T
