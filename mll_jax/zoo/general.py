"""The general model (method.md §3.4): images scored against text, so any concept has a score.

An aligned model maps an image to a unit vector in a text embedding space; its heads
are the text embeddings of every SDAG node (lemmas and gloss) times a learned scale.
So it scores every node, including concepts no expert covers and the nodes that
names outside WordNet match to. Backends, one interface (`add_to_hub`):

- `aligned`: a small CNN image tower (`nets.aligned`) trained LiT-style against
  frozen MiniLM embeddings (`concepts.text`). By default in the paper's regime: on a
  small captioned sample of the expert pool (`zoo.captions`), never a store image,
  as a web model never saw the node images. With `GeneralSpec(data="store")`
  (`configs.general.REGIMES["in-domain"]`) on the store's fit half against each
  concept's own text: an in-domain classifier of the concepts it patches, kept for ablation;
- `clip`: a converted CLIP checkpoint, its vision tower with heads made by its own
  text tower from the same node texts (`zoo.clip_general`);
- `classifier`: the first patch, a plain classifier over the store concepts (kept
  as the baseline the aligned model is measured against).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax import nets
from mll_jax.concepts import text
from mll_jax.concepts.sdag import SDAG
from mll_jax.configs import demo_hub
from mll_jax.configs.specs import GeneralSpec
from mll_jax.data import store as store_lib
from mll_jax.data.augment import check_augmentations
from mll_jax.hub import Hub
from mll_jax.nets import aligned
from mll_jax.zoo import captions, train

__all__ = ["AUGMENTATIONS", "BACKENDS", "FrozenText", "add_to_hub", "built_from"]

BACKENDS = ("aligned", "clip", "classifier")
_DATA = ("captions", "store")  # what an aligned model learns from: the paper regime, or in-domain (ablation)
# Trained on 500 store images per concept, the unaugmented aligned tower fits its training half far better than
# the other half, so calibrating it on that half overrates it; shifts and flips close most of that gap. Chosen on
# the development split and suite (`python benchmarks/patch.py --backends aligned --augmentations shift,flip none`:
# MLL and patch-only accuracy higher with them, on the full and the half-covered hub). The plain classifier
# underfits with them, so it keeps its first recipe.
AUGMENTATIONS = {"aligned": ("shift", "flip"), "classifier": ()}


class FrozenText(nnx.Variable):
    """Text embeddings that training does not touch (LiT: the text tower is locked)."""


class _Contrastive(nnx.Module):
    """Training view of an aligned model: scaled cosine of image and text, softmax over the texts."""

    def __init__(self, model: aligned.Aligned, text: np.ndarray, init_scale: float = 10.0):
        self.model = model
        self.text = FrozenText(jnp.asarray(text, jnp.float32))
        self.log_scale = nnx.Param(jnp.log(jnp.float32(init_scale)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.exp(self.log_scale) * self.model.features(x) @ self.text[...].T


def _train_aligned(
    sdag: SDAG,
    images: np.ndarray,
    labels: np.ndarray,
    label_text: np.ndarray,
    input_spec: dict,
    tower: dict | None = None,
    epochs: int = 15,
    seed: int = 0,
    augmentations: tuple[str, ...] = AUGMENTATIONS["aligned"],
) -> tuple[aligned.Aligned, list[str]]:
    """An aligned model trained on (images, label index into the unit text embeddings `label_text`) and its head
    names (every SDAG node, headed by its lemmas-and-gloss embedding)."""
    nodes, node_text = sdag.node_embeddings()
    model = nets.build("aligned", aligned.config(tower), len(nodes), seed=seed)
    contrastive = _Contrastive(model, label_text)
    train.fit(
        contrastive, images, labels, input_spec, epochs=epochs, batch_size=128, seed=seed, augmentations=augmentations
    )
    aligned.set_text_heads(model, node_text, float(jnp.exp(contrastive.log_scale[...])))
    return model, list(nodes)


def _aligned_training_data(hub: Hub, spec: GeneralSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(images, labels, unit text of each label, provenance) an aligned model of `spec` learns from."""
    if spec.data == "captions":
        sample = captions.draw(hub.sdag, hub.store_spec, spec.captions)
        provenance = {
            "data": "captions",
            "trained_on": "captioned expert-pool images (train split minus the store and the development split); "
            "text: MiniLM embeddings of the captions",
            "caption_rule": spec.captions.to_json(),
            "images": len(sample.indices),
            "captions": sample.counts(),
            "vocabulary": len(sample.vocabulary),
            "indices_sha256": captions.digest(sample.indices),
        }
        return sample.images, sample.captions, text.embed(list(sample.vocabulary)), provenance
    nodes, node_text = hub.sdag.node_embeddings()
    row = {v: i for i, v in enumerate(nodes)}
    fit = store_lib.fit_mask(len(hub.store))
    provenance = {
        "data": "store",
        "trained_on": "sample store, fit half; text: MiniLM embeddings of node lemmas and gloss",
    }
    concept_text = node_text[[row[v] for v in hub.sdag.concept_nodes]]
    return hub.store.images[fit], hub.store.concepts[fit], concept_text, provenance


def built_from(hub: Hub, spec: GeneralSpec) -> bool:
    """Whether the hub's general model is `spec`'s (its id, backend and training data); a hub built before the
    paper regime existed has an in-domain model, which `zoo.experts.build` then replaces."""
    if spec.id not in hub.entries:
        return False
    provenance = hub.entry(spec.id).provenance
    data = provenance.get("data", "store") if spec.backend == "aligned" else None
    wanted = spec.data if spec.backend == "aligned" else None
    return provenance.get("backend") == spec.backend and data == wanted


def add_to_hub(hub: Hub, spec: GeneralSpec = GeneralSpec(), input_spec: dict = demo_hub.INPUT_SPEC) -> str:
    """Build the general model `spec` describes and store it as the hub's general model; returns its id.

    A general model of another id is removed first (a hub has one), and only once the new one is built.
    """
    if spec.backend not in BACKENDS:
        raise ValueError(f"unknown general-model backend {spec.backend!r}; choose one of {BACKENDS}")
    if spec.backend == "clip" and spec.augmentations:
        raise ValueError("the clip backend is converted, not trained: drop `augmentations` from its GeneralSpec")
    if spec.data not in _DATA:
        raise ValueError(f"unknown general-model data {spec.data!r}; choose one of {_DATA}")
    augmentations = AUGMENTATIONS.get(spec.backend, ()) if spec.augmentations is None else spec.augmentations
    check_augmentations(augmentations)  # before the store and the text embeddings are loaded
    provenance = {"backend": spec.backend, "epochs": spec.epochs, "seed": spec.seed}
    if augmentations:
        provenance["augmentations"] = list(augmentations)
    if spec.backend == "aligned":
        images, labels, label_text, trained_on = _aligned_training_data(hub, spec)
        model, heads = _train_aligned(
            hub.sdag, images, labels, label_text, input_spec, spec.config, spec.epochs, spec.seed, augmentations
        )
        arch, config = "aligned", aligned.config(spec.config)
        provenance |= trained_on
    elif spec.backend == "clip":
        from mll_jax.zoo import clip_general  # only this backend reads Hugging Face files

        if spec.source is None:
            raise ValueError("the clip backend needs a checkpoint: GeneralSpec(backend='clip', source=DIR_OR_NAME)")
        model, arch, config, heads, input_spec = clip_general.build(spec.source, hub.sdag, input_spec)
        provenance["source"] = spec.source
    else:
        fit = store_lib.fit_mask(len(hub.store))
        images, concepts = hub.store.images[fit], hub.store.concepts[fit]
        config = spec.config or demo_hub.SMALL_MLP
        model = nets.build("mlp", config, len(hub.store.synsets), seed=spec.seed)
        train.fit(
            model,
            images,
            concepts,
            input_spec,
            epochs=spec.epochs,
            seed=spec.seed,
            augmentations=augmentations,
        )
        arch, heads = "mlp", list(hub.store.synsets)
        provenance["trained_on"] = "sample store, fit half"
    old = [m for m in hub.ids("general") if m != spec.id]
    hub.add(spec.id, model, arch, config, heads, input_spec, role="general", provenance=provenance)
    for model_id in old:
        hub.remove(model_id)
    return spec.id
