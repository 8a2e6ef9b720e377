"""Supervised training of one model with optax; one jitted `lax.scan` per epoch."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mll_jax import engine, memory_maps
from mll_jax.data.augment import augment, check_augmentations
from mll_jax.data.preprocess import preprocess, spec_key

__all__ = ["compiled_programs", "fit", "fit_early_stopping", "loss", "release_programs"]


def loss(graphdef, params, rest, inputs, labels, spec):
    """Mean softmax cross-entropy of the model (graphdef, params, rest) on inputs (preprocessed by `spec`)."""
    x = inputs if spec is None else preprocess(inputs, spec)
    logits = nnx.merge(graphdef, params, rest)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@functools.partial(jax.jit, static_argnames=("graphdef", "optimizer", "spec_items"))
def _epoch(graphdef, optimizer, spec_items, params, rest, opt_state, images, labels):
    spec = None if spec_items is None else dict(spec_items)

    def step(carry, batch):
        params, opt_state = carry
        value, grads = jax.value_and_grad(loss, argnums=1)(graphdef, params, rest, *batch, spec)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (images, labels))
    return params, opt_state, losses.mean()


def compiled_programs() -> int:
    """How many compiled training programs this process holds (one per model shape and epoch length)."""
    return _epoch._cache_size()


def release_programs() -> None:
    """Drop the compiled training programs. A run that trains many models of different shapes once each (a
    suite's oracles) would otherwise keep them all: each holds hundreds of memory maps of machine code, and a
    60-task open-world suite ran out of the kernel's 65,530 maps per process."""
    _epoch.clear_cache()


def _epochs(
    model: nnx.Module,
    images: np.ndarray,
    labels: np.ndarray,
    input_spec: dict | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    augmentations: tuple[str, ...],
):
    """Train `model` in place, yielding the epoch number after each epoch."""
    check_augmentations(augmentations)  # before any training, not after the first epoch
    memory_maps.check()  # a model of a new shape compiles a new epoch program
    if len(images) < batch_size:
        batch_size = len(images)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    steps = len(images) // batch_size
    spec_items = None if input_spec is None else spec_key(input_spec)
    for epoch in range(epochs):
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
        yield epoch + 1


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
    for _ in _epochs(model, images, labels, input_spec, epochs, batch_size, learning_rate, seed, augmentations):
        pass
    return model


def fit_early_stopping(
    model: nnx.Module,
    images: np.ndarray,
    labels: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    input_spec: dict,
    max_epochs: int,
    patience: int,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
    augmentations: tuple[str, ...] = (),
) -> tuple[nnx.Module, dict]:
    """`fit` until validation accuracy has not risen for `patience` epochs; the model keeps its best epoch.

    Returns the model and its history: epochs run, the best epoch and the
    validation accuracy after each epoch.
    """

    if patience < 1 or max_epochs < 1:
        raise ValueError(f"patience and max_epochs must be at least 1, got {patience} and {max_epochs}")
    val_images, val_labels = validation
    history: list[float] = []
    best_epoch, best_params = 0, None
    for epoch in _epochs(model, images, labels, input_spec, max_epochs, batch_size, learning_rate, seed, augmentations):
        probs = engine.model_probabilities(model, input_spec, val_images)
        history.append(float(np.mean(probs.argmax(1) == val_labels)))
        if best_params is None or history[-1] > history[best_epoch - 1]:
            best_epoch, best_params = epoch, jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))  # a copy, not views
        elif epoch - best_epoch >= patience:
            break
    nnx.update(model, best_params)
    return model, {"epochs": len(history), "best_epoch": best_epoch, "val_accuracy": history}
