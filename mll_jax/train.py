"""Supervised training of one model with optax; one jitted `lax.scan` per epoch."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mll_jax import models


def shift(images: np.ndarray, rng: np.random.Generator, pixels: int = 2) -> np.ndarray:
    """Each image translated by up to `pixels` in height and width, edges zero-filled."""
    n, h, w = images.shape[:3]
    padded = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels)) + ((0, 0),) * (images.ndim - 3))
    dy, dx = rng.integers(0, 2 * pixels + 1, (2, n))
    rows = dy[:, None] + np.arange(h)  # [n, h]
    cols = dx[:, None] + np.arange(w)  # [n, w]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half of the images mirrored left to right."""
    mirrored = rng.random(len(images)) < 0.5
    return np.where(mirrored.reshape((-1,) + (1,) * (images.ndim - 1)), images[:, :, ::-1], images)


AUGMENTATIONS = {"shift": shift, "flip": flip}


def check_augmentations(names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {sorted(AUGMENTATIONS)}")


def augment(images: np.ndarray, names: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """`images` [N, H, W, ...] through the named augmentations, in order (a fresh draw per call)."""
    check_augmentations(names)
    for name in names:
        images = AUGMENTATIONS[name](images, rng)
    return images


def _loss(graphdef, params, rest, inputs, labels, spec):
    x = inputs if spec is None else models.preprocess(inputs, spec)
    logits = nnx.merge(graphdef, params, rest)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@functools.partial(jax.jit, static_argnames=("graphdef", "optimizer", "spec_items"))
def _epoch(graphdef, optimizer, spec_items, params, rest, opt_state, images, labels):
    spec = None if spec_items is None else dict(spec_items)

    def step(carry, batch):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(_loss, argnums=1)(graphdef, params, rest, *batch, spec)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (images, labels))
    return params, opt_state, losses.mean()


def fit(
    model: nnx.Module,
    images: np.ndarray,
    labels: np.ndarray,
    input_spec: dict | None,
    epochs: int = 3,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
    augmentations: tuple[str, ...] = (),
) -> nnx.Module:
    """Train `model` in place on (uint8 images, int labels) with Adam; returns it.

    `augmentations` (names in `AUGMENTATIONS`) are drawn afresh for every epoch.

    With `input_spec` None the inputs are used as they are (e.g. heads trained on
    a frozen backbone's features). Only `nnx.Param`s train; other variables (a
    frozen text embedding, batch statistics) stay as they are.
    """
    check_augmentations(augmentations)  # before any training, not after the first epoch
    if len(images) < batch_size:
        batch_size = len(images)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    steps = len(images) // batch_size
    spec_items = None
    if input_spec is not None:
        spec_items = tuple(sorted((k, v) for k, v in input_spec.items() if isinstance(v, float)))
    for _ in range(epochs):
        order = rng.permutation(len(images))[: steps * batch_size].reshape(steps, batch_size)
        batches = augment(images[order.ravel()], augmentations, rng).reshape(order.shape + images.shape[1:])
        params, opt_state, _ = _epoch(
            graphdef,
            optimizer,
            spec_items,
            params,
            rest,
            opt_state,
            jnp.asarray(batches),
            jnp.asarray(labels[order]),
        )
    nnx.update(model, params)
    return model
