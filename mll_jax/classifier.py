"""Reuse (method.md §3.4): a selection becomes one jitted classifier `images -> logits [B, K]`.

Only the selected models run, on the engine's groups (a shared backbone once for
all its selected heads). Class k's logit is
z_k = sum over its choices of w * log(sum of the chosen heads' probabilities) *
exp(-t_model) + b_k, exactly as CHCO scored it on the label cache. A softmax head
needs its whole row for the normaliser, so a used model's head layer runs whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mll_jax import engine
from mll_jax.hub.hub import Hub
from mll_jax.selection.chco import candidate_scores
from mll_jax.selection.types import Selection

_programs: set = set()  # (groups, input shape) of every compiled classifier program


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
def _logits(layouts: tuple, params: tuple, combine: tuple, biases: jax.Array, images: jax.Array) -> jax.Array:
    # One compiled program per (groups, input shape); selections over the same models share it.
    z = jnp.broadcast_to(biases, (images.shape[0], biases.shape[0]))
    for layout, group_params, (membership, weights) in zip(layouts, params, combine):
        probs = engine.group_probabilities(layout, group_params, images)  # [M, B, H]
        scores = candidate_scores(jnp.einsum("mbh,mhk->mbk", probs, membership))
        z = z + jnp.where(weights[:, None] > 0, scores * weights[:, None], 0.0).sum(0)
    return z


def reuse(hub: Hub, selection: Selection, dtype: str = "float32") -> Callable[[jax.Array], jax.Array]:
    """A jitted classifier for `selection`: uint8 images [B, H, W, C] -> logits [B, K]."""
    K = len(selection.classes)
    runner = engine.from_hub(hub, list(selection.models), dtype=dtype)
    combine = []
    for group in runner.groups:
        membership = np.zeros((group.size, group.width, K), np.float32)  # padded models stay 0
        weights = np.zeros((group.size, K), np.float32)
        for m, member in enumerate(group.members):
            for k, choices in enumerate(selection.choices):
                for c in choices:
                    if c.model == member.id:
                        membership[m, c.heads, k] = 1.0
                        weights[m, k] = c.weight * np.exp(-selection.temperatures[member.id])
        combine.append((jnp.asarray(membership), jnp.asarray(weights)))
    shape = tuple(hub.entry(selection.models[0])["input_spec"]["shape"])
    layouts = tuple(g.layout for g in runner.groups)
    params = tuple(g.params for g in runner.groups)
    combine, biases = tuple(combine), jnp.asarray(selection.biases, jnp.float32)

    def classifier(images: jax.Array) -> jax.Array:
        check_images(images, shape)
        _programs.add((layouts, images.shape, str(images.dtype)))
        return _logits(layouts, params, combine, biases, images)

    classifier.classes = list(selection.classes)
    return classifier


def scores_from_probabilities(selection: Selection, probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The logits [N, K] `reuse(hub, selection)` gives, from each used model's probabilities [N, H] on the same
    images (experiments score many selections of one hub on one test set; a test checks they agree)."""
    n = len(probs[selection.models[0]])
    z = np.broadcast_to(np.asarray(selection.biases, np.float32), (n, len(selection.classes))).copy()
    for k, choices in enumerate(selection.choices):
        for c in choices:
            summed = np.asarray(probs[c.model], np.float32)[:, c.heads].sum(1)
            weight = c.weight * np.exp(-selection.temperatures[c.model])
            z[:, k] += weight * np.asarray(candidate_scores(summed))
    return z


def compiled_programs() -> int:
    """How many classifier programs this process has compiled (one per selected groups and input shape)."""
    return len(_programs)
