"""Supervised training of one model with optax; one jitted `lax.scan` per epoch."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mll_jax.data.augment import augment, check_augmentations
from mll_jax.data.preprocess import preprocess, spec_key


def _loss(graphdef, params, rest, inputs, labels, spec):
    x = inputs if spec is None else preprocess(inputs, spec)
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

    `augmentations` (names in `data.augment.AUGMENTATIONS`) are drawn afresh for every epoch.

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
    spec_items = None if input_spec is None else spec_key(input_spec)
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
