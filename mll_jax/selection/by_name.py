"""Classes by name (method.md §3.5): names no SDAG node matches, answered by the general model's text heads.

Such a class has no node, so no store samples, no candidates and nothing for CHCO
to calibrate it on. The general model scores images against text, so it scores the
name itself: a head holding the name's text embedding, as its node heads hold the
nodes' texts. A task with such classes is answered in two steps, each by the model
that knows it best: the general model's softmax over every class of the task (its
node heads for a matched class, its name head for the rest) decides whether a
class by name wins; CHCO's selection for the matched classes decides which of them:

    logit(k) = log g(k)                                    for a class by name
    logit(j) = max_{i matched} log g(i) + z_j - max_i z_i  for a matched class

so an image is given a class by name exactly when the general model alone gives it
one, and otherwise CHCO's answer among the matched classes. Nothing is fitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from mll_jax import engine
from mll_jax.concepts import task as task_lib
from mll_jax.concepts import text
from mll_jax.hub import Hub
from mll_jax.selection.candidates import general_heads

if TYPE_CHECKING:  # importing the nets imports flax: half a second of a first query that never builds a model
    from mll_jax.nets.aligned import Aligned

__all__ = ["TEXT_BACKENDS", "TextHeads", "class_scores", "gated", "text_heads", "text_model"]

# General-model backends whose heads are MiniLM embeddings of text, so a name's MiniLM embedding is a head of theirs
# (`zoo.general`); a CLIP general model's heads come from CLIP's own text tower.
TEXT_BACKENDS = ("aligned",)


def text_model(hub: Hub, classes: list[task_lib.TaskClass]) -> str:
    """The model that answers the classes by name of a task: the hub's general model, if it scores text in
    MiniLM's space; else a TaskError naming the classes."""
    general = hub.general_id
    if general is None or general in hub.excluded():
        raise task_lib.unmatched_error(hub.sdag, classes, "the hub has no usable general model to answer them by name")
    backend = hub.entry(general).provenance.get("backend")
    if backend not in TEXT_BACKENDS or not text.available():
        raise task_lib.unmatched_error(
            hub.sdag, classes, f"the general model {general!r} ({backend}) cannot score a name it was not given"
        )
    return general


def text_heads(
    hub: Hub, model: Aligned, names: list[str], concepts: list[list[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task class, the hub's general `model`'s heads on it: (kernel [dim, R], bias [R]) of R heads and the
    class of each [R]. A matched class has its concepts' node heads; a class by name (no concepts) a head made of its
    name's text embedding at the general model's scale (the mean norm of its node heads)."""
    kernel, bias = np.asarray(model.head.kernel[...]), np.asarray(model.head.bias[...])
    heads = general_heads(hub)
    scale = float(np.linalg.norm(kernel, axis=0).mean())
    columns, biases, owner = [], [], []
    for k, (name, cs) in enumerate(zip(names, concepts)):
        if cs:
            columns += [kernel[:, heads[c]] for c in cs]
            biases += [bias[heads[c]] for c in cs]
            owner += [k] * len(cs)
        else:
            columns.append(scale * text.embedding(name))
            biases.append(0.0)
            owner.append(k)
    return np.stack(columns, 1).astype(np.float32), np.asarray(biases, np.float32), np.asarray(owner, np.int32)


class TextHeads:
    """The general model's class scores [B, K] for one task (its features once, then its heads on the task)."""

    def __init__(self, hub: Hub, general: str, names: list[str], concepts: list[list[str]]):
        self.model = hub.load_model(general)
        self.input_spec = hub.entry(general).input_spec
        kernel, bias, owner = text_heads(hub, self.model, names, concepts)
        self.kernel, self.bias = jnp.asarray(kernel), jnp.asarray(bias)
        self.membership = jnp.asarray(np.eye(len(names), dtype=bool)[owner])  # [R, K]

    def __call__(self, images: np.ndarray) -> jax.Array:
        features = engine.model_features(self.model, self.input_spec, np.asarray(images))
        return class_scores(features, self.kernel, self.bias, self.membership)


@jax.jit
def class_scores(features: jax.Array, kernel: jax.Array, bias: jax.Array, membership: jax.Array) -> jax.Array:
    """Class scores [B, K]: log-sum-exp of each class's heads' logits (heads `kernel` [F, R], `bias` [R]; membership
    [R, K]) on `features` [B, F]."""
    head_logits = features @ kernel + bias
    return jax.nn.logsumexp(jnp.where(membership[None], head_logits[:, :, None], -jnp.inf), axis=1)


@jax.jit
def gated(general: jax.Array, experts: jax.Array, matched: jax.Array) -> jax.Array:
    """Logits [B, K]: the general model's log-probability for a class by name; for a matched class, the general
    model's best log-probability among the matched classes, less how far the experts put the class below their
    first. So the general model decides whether a class by name wins, and the experts which matched class."""
    log_p = jax.nn.log_softmax(general, axis=-1)
    best = jnp.max(jnp.where(matched, log_p, -jnp.inf), axis=-1, keepdims=True)
    within = jnp.where(matched, experts, -jnp.inf)
    below_first = within - jnp.max(within, axis=-1, keepdims=True)
    return jnp.where(matched, best + below_first, log_p)
