"""Building a hub from specs: train each expert on the expert pool and store it (the demo hub by default).

The specs are data (`configs.demo_hub`). The general model is built by
`zoo.general` in the paper regime (it never sees a store image); a hub whose
general model was built from another spec gets the configured one.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from tqdm.auto import tqdm

from mll_jax import engine, nets
from mll_jax.configs import demo_hub
from mll_jax.configs.specs import ExpertSpec
from mll_jax.data import store as store_lib
from mll_jax.data.corrupt import corrupt
from mll_jax.hub import Hub
from mll_jax.zoo import general, train

__all__ = ["add_expert", "build", "declared_heads", "log", "provenance", "training_indices"]

log = logging.getLogger(__name__)


def training_indices(spec: ExpertSpec, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (indices into `labels`, head targets) an expert trains on, with its noise and data cap."""
    rng = np.random.default_rng(spec.seed)
    picked = [np.flatnonzero(labels == c) for c in spec.classes]
    if spec.per_class is not None:
        picked = [rng.choice(p, min(spec.per_class, len(p)), replace=False) for p in picked]
    index = np.concatenate(picked)
    targets = np.concatenate([np.full(len(p), h, np.int32) for h, p in enumerate(picked)])
    noisy = rng.random(len(targets)) < spec.label_noise
    targets[noisy] = rng.integers(0, len(spec.classes), noisy.sum())
    return index, targets


def _training_data(spec: ExpertSpec, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (images, head targets) an expert trains on (`training_indices`)."""
    index, targets = training_indices(spec, labels)
    return corrupt(images[index], spec.corruption, spec.seed), targets


def _train_expert(
    spec: ExpertSpec, images: np.ndarray, labels: np.ndarray, backbone=None, input_spec: dict = demo_hub.INPUT_SPEC
):
    """A trained model for `spec`; with `backbone`, only heads trained on its frozen features."""
    x, y = _training_data(spec, images, labels)
    model = nets.build(spec.arch, spec.config, len(spec.classes), seed=spec.seed)
    spec_or_none = input_spec
    if backbone is not None:
        x, spec_or_none = engine.model_features(backbone, input_spec, x), None
    return train.fit(model, x, y, spec_or_none, epochs=spec.epochs, batch_size=min(128, len(x)), seed=spec.seed)


def declared_heads(spec: ExpertSpec, class_names: list[str]) -> list[str]:
    heads = [class_names[c] for c in spec.classes]
    if spec.swap_heads:
        a, b = spec.swap_heads
        heads[a], heads[b] = heads[b], heads[a]
    return heads


def provenance(spec: ExpertSpec) -> dict:
    """What the hub records of how an expert was made: its spec less what the entry holds anyway."""
    recorded = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("id", "arch", "config", "backbone")}
    if recorded["corruption"] is None:
        del recorded["corruption"]  # as the hubs made before corruptions existed record it
    return recorded | {"trained_on": "expert pool"}


def add_expert(hub: Hub, spec: ExpertSpec, role: str = "expert", input_spec: dict = demo_hub.INPUT_SPEC) -> None:
    """Train `spec` on the expert pool (an expert, or with role "backbone" a shared backbone); store it."""
    pool = store_lib.expert_pool(hub.store_spec)
    images, labels = pool.images, pool.labels
    names = [c["name"] for c in pool.classes]
    backbone = hub.load_backbone(spec.backbone) if spec.backbone else None
    model = _train_expert(spec, images, labels, backbone, input_spec)
    if role == "backbone":
        hub.add_backbone(spec.id, model, spec.arch, spec.config, input_spec, provenance(spec))
    else:
        heads = declared_heads(spec, names)
        hub.add(spec.id, model, spec.arch, spec.config, heads, input_spec, role, provenance(spec), spec.backbone)


def build(path, config: demo_hub.HubConfig | None = None, database: str | None = None) -> Hub:
    """Create (or complete) the hub at `path` from `config` (default: the demo hub); trains only what it lacks.
    A new hub keeps its rows in `database` (postgresql://...) if given, else in SQLite."""
    config = config or demo_hub.get_config()
    try:
        hub = Hub.open(path)
    except FileNotFoundError:
        hub = Hub.create(path, database=database)
    experts = config.experts
    needed = {s.backbone for s in experts if s.backbone and s.id not in hub.entries}
    todo = [(s, "backbone") for s in config.backbones if s.id in needed and s.id not in hub.backbones]
    todo += [(s, "expert") for s in experts if s.id not in hub.entries]
    log.info("hub %s: %d model(s) to train", hub.path, len(todo))
    for spec, role in tqdm(todo, desc="training models", disable=not todo):
        add_expert(hub, spec, role, config.input_spec)
    if config.general is not None and not general.built_from(hub, config.general):
        log.info("hub %s: training the general model (%s)", hub.path, config.general.backend)
        general.add_to_hub(hub, config.general, config.input_spec)
    return hub
