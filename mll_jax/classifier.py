"""Reuse (method.md §3.4): a selection becomes a classifier `images -> logits [B, K]`.

Only the selected models run, on the engine's groups (a shared backbone once for
all its selected heads), each group through programs other selections share. Class k's logit is
z_k = sum over its choices of w * log(sum of the chosen heads' probabilities) *
exp(-t_model) + b_k, exactly as CHCO scored it on the label cache; a task with classes
no SDAG node matches is gated by the general model's text heads (`selection/by_name.py`). A softmax head
needs its whole row for the normaliser, so a used model's head layer runs whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mll_jax import engine
from mll_jax.engine import sharding
from mll_jax.hub import Hub
from mll_jax.selection import by_name
from mll_jax.selection.chco import candidate_scores
from mll_jax.selection.types import Selection

__all__ = ["reuse", "scores_from_probabilities"]


def _check_images(images, shape: tuple[int, ...]) -> None:
    """Raise a ValueError naming the problem if `images` is not a batch of uint8 grey or RGB images (each model
    sees them at its own input shape, `shape` for the first: `data.preprocess.to_shape`)."""
    dtype = getattr(images, "dtype", None)
    if dtype != np.uint8:
        raise ValueError(f"images must be uint8 in [0, 255], got dtype {dtype}; convert with np.uint8(...)")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have shape [B, height, width, 1 or 3] (these models take {list(shape)}), "
            f"got {list(images.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError("the batch is empty; pass at least one image")


CLASS_SLOTS = 8  # a group's scores are padded to a multiple of this many classes: tasks of up to 8 share programs


@jax.jit
def _group_scores(outputs: tuple, membership: jax.Array, weights: jax.Array) -> jax.Array:
    """One group's part of the logits [B, slots], from its models' probabilities (a stack [M, B, H], or one model's
    [B, H] each). Its program depends only on shapes, so selections of different models share it."""
    probs = jnp.concatenate([o if o.ndim == 3 else o[None] for o in outputs])
    scores = candidate_scores(jnp.einsum("mbh,mhk->mbk", probs, membership))
    return jnp.where(weights[:, None] > 0, scores * weights[:, None], 0.0).sum(0)


def reuse(hub: Hub, selection: Selection, dtype: str = "float32") -> Callable[[jax.Array], jax.Array]:
    """A classifier for `selection`: uint8 images [B, H, W, C] -> logits [B, K].

    It runs the engine's programs of the selected models' groups and one small program per group that turns
    their probabilities into class scores; both are shared with other selections (and, through the compile
    cache, with other processes), so a new selection compiles little or nothing."""
    K = len(selection.classes)
    slots = -(-K // CLASS_SLOTS) * CLASS_SLOTS
    runner = engine.from_hub(hub, selection.expert_models, dtype=dtype) if selection.expert_models else None
    combine = []
    for group in runner.groups if runner is not None else ():
        membership = np.zeros((group.size, group.width, slots), np.float32)  # padded models and classes stay 0
        weights = np.zeros((group.size, slots), np.float32)
        for m, member in enumerate(group.members):
            for k, choices in enumerate(selection.choices):
                for c in choices:
                    if c.model == member.id:
                        membership[m, c.heads, k] = 1.0
                        weights[m, k] = c.weight * np.exp(-selection.temperatures[member.id])
        combine.append(jax.device_put((membership, weights)))  # not jnp.asarray: that compiles a copy per shape
    shape = tuple(hub.entry(selection.models[0]).input_spec["shape"])
    biases = jax.device_put(np.pad(np.asarray(selection.biases, np.float32), (0, slots - K)))
    by_text = None
    if selection.by_name:  # classes no node matches: the general model's text heads gate the experts (§3.5)
        by_text = by_name.TextHeads(hub, selection.text_model, selection.classes, selection.concepts)
        matched = jnp.asarray([name not in selection.by_name for name in selection.classes])

    def expert_scores(rows: np.ndarray, batches: int) -> jax.Array:
        """Scores [rows, slots] of one dispatch: `batches` engine batches, or (0) the rows padded to a power of
        two (and equal rows a device). Either way a few row counts compile, whatever sizes a user passes."""
        size = runner.batch_size * batches if batches else 1 << (len(rows) - 1).bit_length()
        placed = runner.place(engine.pad_rows(rows, sharding.round_up(size, runner.mesh)))
        z = biases
        for group, (membership, weights) in zip(runner.groups, combine):
            z = z + _group_scores(tuple(group.run(placed, max(batches, 1))), membership, weights)
        return z[: len(rows)]

    def classifier(images: jax.Array) -> jax.Array:
        _check_images(images, shape)
        rows = len(images)
        if runner is None:
            z = jnp.broadcast_to(biases, (rows, slots))
        elif rows <= runner.batch_size:
            z = expert_scores(images, 0)
        else:  # as the engine streams: whole chunks of batches, then power-of-two numbers of batches
            z = jnp.concatenate([expert_scores(piece, batches) for piece, batches in runner.pieces(np.asarray(images))])
        return z[:, :K] if by_text is None else by_name.gated(by_text(images), z[:, :K], matched)

    classifier.classes = list(selection.classes)
    return classifier


def scores_from_probabilities(selection: Selection, probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The logits [N, K] `reuse(hub, selection)` gives, from each used model's probabilities [N, H] on the same
    images (experiments score many selections of one hub on one test set; a test checks they agree)."""
    if selection.by_name:
        raise ValueError(
            f"classes {selection.by_name} are answered by the general model's features, not its probabilities; "
            "score this selection with reuse(hub, selection)"
        )
    n = len(probs[selection.models[0]])
    z = np.broadcast_to(np.asarray(selection.biases, np.float32), (n, len(selection.classes))).copy()
    for k, choices in enumerate(selection.choices):
        for c in choices:
            summed = np.asarray(probs[c.model], np.float32)[:, c.heads].sum(1)
            weight = c.weight * np.exp(-selection.temperatures[c.model])
            z[:, k] += weight * np.asarray(candidate_scores(summed))
    return z
