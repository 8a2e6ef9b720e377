"""Runs models over images in batches: the one place the library calls experts.

Each model gets one jitted function (preprocess -> logits -> softmax); batches are
padded to a fixed size so a model compiles once whatever the input length.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from mll_jax import models


def forward(graphdef: nnx.GraphDef, spec_items: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """Softmax head probabilities of one model on uint8 images (pure; jit it or call inside jit)."""
    logits = nnx.merge(graphdef, state)(models.preprocess(images, dict(spec_items)))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


_probabilities = jax.jit(forward, static_argnums=(0, 1))


def spec_key(input_spec: dict) -> tuple:
    """Hashable form of the numeric part of an input spec (a static jit argument)."""
    return tuple(sorted((k, float(v)) for k, v in input_spec.items() if isinstance(v, int | float)))


def batches(n: int, batch_size: int) -> Iterable[slice]:
    return (slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size))


def pad_batch(images: np.ndarray, batch_size: int) -> np.ndarray:
    missing = batch_size - len(images)
    return images if missing == 0 else np.concatenate([images, np.zeros((missing, *images.shape[1:]), images.dtype)])


def probabilities(
    model: nnx.Module, input_spec: dict, images: np.ndarray, batch_size: int = 1000, progress: str | None = None
) -> np.ndarray:
    """Softmax outputs [N, H] of `model` on uint8 `images` [N, H, W, C]."""
    graphdef, state = nnx.split(model)
    key = spec_key(input_spec)
    batch_size = min(batch_size, max(len(images), 1))
    out = []
    for s in tqdm(list(batches(len(images), batch_size)), desc=progress, disable=progress is None, leave=False):
        probs = _probabilities(graphdef, key, state, pad_batch(images[s], batch_size))
        out.append(np.asarray(probs)[: s.stop - s.start])
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), np.float32)
