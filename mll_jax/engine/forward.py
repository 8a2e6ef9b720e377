"""What the engine computes, as pure functions: one model's probabilities, a group's, a backbone's features.

A group is models of one signature (same class and parameter shapes up to the head
size), laid out for one strategy (`Layout`): stacked for `vmap` or `map`, one state
per model for `loop`, or heads over one backbone for `shared`. Heads are padded to
the group's width; a padded head's bias is MASKED, so its softmax probability is
exactly 0 and the real heads' probabilities are unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax.data.preprocess import preprocess as preprocess_spec
from mll_jax.data.preprocess import spec_key
from mll_jax.nets import precision

__all__ = [
    "HEAD_ALIGN",
    "Layout",
    "MASKED",
    "Member",
    "chunked",
    "features",
    "forward",
    "forward_leaves",
    "group_probabilities",
    "head_widths",
    "pad_heads",
    "preprocess",
    "signature",
]

MASKED = -1e9  # bias of a padded head
HEAD_ALIGN = 8  # head layers are padded to a multiple of this width


@dataclasses.dataclass(frozen=True)
class Member:
    """One model for the engine. With `backbone`, `model` holds only the heads (`linear`)."""

    id: str
    model: nnx.Module
    input_spec: dict
    backbone: str | None = None


@dataclasses.dataclass(frozen=True)
class Layout:
    """The static part of a group (a jit static argument): how its parameters are laid out."""

    strategy: str  # vmap | map | loop | shared
    graphdefs: tuple  # loop: one per model; otherwise the group's one graphdef (shared: the backbone's)
    treedefs: tuple  # the matching states' tree structures: parameters travel as flat leaf lists
    spec: tuple
    width: int  # every model's head layer padded to this width (>= max(heads))


def head_widths(heads: Iterable[int]) -> tuple[int, ...]:
    """A group's candidate head widths: its widest head, and that rounded up to a multiple of `HEAD_ALIGN`."""
    widest = max(heads)
    return tuple(dict.fromkeys([widest, -(-widest // HEAD_ALIGN) * HEAD_ALIGN]))


def preprocess(spec: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """uint8 images -> the model's input, in the dtype it computes in (its batch norms may keep float32)."""
    return preprocess_spec(images, dict(spec)).astype(precision.compute_dtype(jax.tree.leaves(state)))


def forward(graphdef: nnx.GraphDef, spec: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """Softmax head probabilities [B, H] of one model on uint8 images."""
    logits = nnx.merge(graphdef, state)(preprocess(spec, state, images))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def features(graphdef: nnx.GraphDef, spec: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """A backbone's features [B, F] on uint8 images."""
    return nnx.merge(graphdef, state).features(preprocess(spec, state, images))


def forward_leaves(graphdef: nnx.GraphDef, treedef, spec: tuple, leaves: list, images: jax.Array) -> jax.Array:
    """`forward` with the state as a flat list of arrays (cheaper to pass into a jitted call)."""
    return forward(graphdef, spec, jax.tree.unflatten(treedef, leaves), images)


def group_probabilities(layout: Layout, params, images: jax.Array) -> jax.Array:
    """Probabilities [M, B, layout.width] of every model of a group (padded heads are 0)."""
    if layout.strategy == "shared":
        backbone = jax.tree.unflatten(layout.treedefs[0], params["backbone"])
        feats = features(layout.graphdefs[0], layout.spec, backbone, images)
        logits = jnp.einsum("bf,mfh->bmh", feats, params["kernel"]) + params["bias"]
        # softmax before the transpose to [M, B, H]: XLA:CPU then fuses the backbone's tail, heads and softmax
        return jnp.moveaxis(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), 1, 0)
    if layout.strategy == "loop":
        outs = [
            forward_leaves(g, t, layout.spec, p, images) for g, t, p in zip(layout.graphdefs, layout.treedefs, params)
        ]
        return jnp.stack(outs)
    run = functools.partial(forward_leaves, layout.graphdefs[0], layout.treedefs[0], layout.spec)
    if layout.strategy == "vmap":
        return jax.vmap(run, in_axes=(0, None))(params, images)
    return jax.lax.map(lambda leaves: run(leaves, images), params)


def chunked(fn, chunks: int):
    """`fn(params, images[B])` -> `[..., B, H]` made to take `chunks` batches at once, `images[chunks * B]`.

    One dispatch runs them all (`lax.map`, one batch at a time, so memory stays that of one
    batch): at small batch sizes the per-call cost of Python and the runtime dominates.
    """
    if chunks == 1:
        return fn

    def run(params, images: jax.Array) -> jax.Array:
        out = jax.lax.map(lambda x: fn(params, x), images.reshape(chunks, -1, *images.shape[1:]))
        out = jnp.moveaxis(out, 0, -3)  # [..., chunks, B, H]
        return out.reshape(*out.shape[:-3], -1, out.shape[-1])

    return run


def _is_head(path) -> bool:
    return jax.tree_util.keystr(path).startswith("['head']")


def pad_heads(state: nnx.State, width: int) -> nnx.State:
    """The state as host arrays, its head widened to `width` outputs (zero kernel columns, masked biases).

    On the host (numpy): eager jax ops would compile a program for every new shape, which a new
    process's first classifier pays for each model it has not stacked before."""
    if "bias" not in state["head"]:
        raise ValueError("a model's head layer needs a bias (padded heads are masked through it); got none")

    def pad(path, x):
        x = np.asarray(x)
        if not _is_head(path) or x.shape[-1] == width:
            return x
        value = MASKED if x.ndim == 1 else 0.0
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])], constant_values=value)

    return jax.tree_util.tree_map_with_path(pad, state)


def signature(member: Member) -> str:
    """Models with equal signatures can share one stacked program."""
    if member.backbone is not None:
        parts = ["shared", member.backbone, spec_key(member.input_spec)]
    else:
        state = nnx.state(member.model)
        shapes = [
            (jax.tree_util.keystr(p), x.shape[:-1] if _is_head(p) else x.shape, str(x.dtype))
            for p, x in jax.tree_util.tree_leaves_with_path(state)
        ]
        parts = [type(member.model).__name__, shapes, spec_key(member.input_spec)]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]
