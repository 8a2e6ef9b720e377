"""Reuse (DESIGN 3.3), the classifier: a selection becomes one jitted classifier `images -> logits [B, K]`.

Each used model runs once per batch with its own preprocessing; class k's logit is
z_k = sum over its choices of w * log(sum of the chosen heads' probabilities) *
exp(-t_model) + b_k, exactly as CHCO scored it on the label cache.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax import engine
from mll_jax.hub import Hub
from mll_jax.selection import EPS, Selection


def check_images(images, shape: tuple[int, ...]) -> None:
    """Raise a ValueError naming the problem if `images` is not a batch of uint8 images of `shape`."""
    dtype = getattr(images, "dtype", None)
    if dtype != np.uint8:
        raise ValueError(f"images must be uint8 in [0, 255], got dtype {dtype}; convert with np.uint8(...)")
    if images.ndim != len(shape) + 1 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"images must have shape [B, {', '.join(map(str, shape))}], got {list(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("the batch is empty; pass at least one image")


@functools.partial(jax.jit, static_argnums=0)
def _logits(statics: tuple, arrays: tuple, biases: jax.Array, images: jax.Array) -> jax.Array:
    # One compiled program per (models, input shape); selections over the same models share it.
    z = jnp.broadcast_to(biases, (images.shape[0], biases.shape[0]))
    for (graphdef, spec), (state, membership, weights) in zip(statics, arrays):
        probs = engine.forward(graphdef, spec, state, images)
        scores = jnp.log(probs @ membership + EPS)
        z = z + jnp.where(weights > 0, scores * weights, 0.0)
    return z


def reuse(hub: Hub, selection: Selection) -> Callable[[jax.Array], jax.Array]:
    """A jitted classifier for `selection`: uint8 images [B, H, W, C] -> logits [B, K]."""
    K = len(selection.classes)
    statics, arrays = [], []
    for model_id in selection.models:
        entry = hub.entry(model_id)
        graphdef, state = nnx.split(hub.load_model(model_id))
        membership = np.zeros((len(entry["heads"]), K), np.float32)
        weights = np.zeros(K, np.float32)
        for k, choices in enumerate(selection.choices):
            for c in choices:
                if c.model == model_id:
                    membership[c.heads, k] = 1.0
                    weights[k] = c.weight * np.exp(-selection.temperatures[model_id])
        statics.append((graphdef, engine.spec_key(entry["input_spec"])))
        arrays.append((state, jnp.asarray(membership), jnp.asarray(weights)))
    shape = tuple(hub.entry(selection.models[0])["input_spec"]["shape"])
    statics, arrays = tuple(statics), tuple(arrays)
    biases = jnp.asarray(selection.biases, jnp.float32)

    def classifier(images: jax.Array) -> jax.Array:
        check_images(images, shape)
        return _logits(statics, arrays, biases, images)

    classifier.classes = list(selection.classes)
    return classifier
