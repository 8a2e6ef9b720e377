"""The demo hub: expert specs as data, and the code that trains and stores them.

Experts train on overlapping class subsets of the expert pool (train split minus
the sample store). Two are deliberately flawed: `weak-noisy-mlp` trains with 60 %
label noise and `swapped-cnn` declares two of its heads under each other's names.
No expert covers 'Bag': tasks with bags need the general model.

One family shares a backbone: a CNN trained once on every expert-pool class, and
three experts that are only heads, trained on its frozen features for different
label spaces. The engine runs that backbone once for all three.

The general model (the interim patch, `general.py`) is trained on the store's fit
half only, so that selection can validate it honestly on the other half.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from tqdm.auto import tqdm

from mll_jax import engine, general, models, train
from mll_jax import store as store_lib
from mll_jax.hub import Hub

log = logging.getLogger(__name__)

INPUT_SPEC = {"shape": [28, 28, 1], "dtype": "uint8", "mean": 0.286, "std": 0.353}
SMALL_CNN = {"channels": [8, 16], "dense": 64}
CNN = {"channels": [16, 32], "dense": 128}
LARGE_CNN = {"channels": [24, 48], "dense": 128}
CNN_ITEMS = 2500  # CNNs train on fewer items per class: convolutions are slow on CPU
SMALL_MLP = {"hidden": [64]}
MLP = {"hidden": [256]}
HEADS = {"in_features": CNN["dense"]}


@dataclasses.dataclass(frozen=True)
class ExpertSpec:
    id: str
    arch: str
    config: dict
    classes: tuple[int, ...]  # dataset labels, in head order
    epochs: int = 2
    label_noise: float = 0.0
    per_class: int | None = None  # cap on training items per class (tiny data)
    swap_heads: tuple[int, int] | None = None  # declared names of these heads exchanged
    seed: int = 0
    backbone: str | None = None  # heads only (`linear`), trained on this backbone's frozen features


DEMO_EXPERTS = (
    ExpertSpec("footwear-cnn", "cnn", CNN, (5, 7, 9), per_class=CNN_ITEMS),
    ExpertSpec("footwear-mlp", "mlp", MLP, (5, 7, 9)),
    ExpertSpec("tops-cnn", "cnn", LARGE_CNN, (0, 2, 4, 6), per_class=CNN_ITEMS),
    ExpertSpec("tops-mlp", "mlp", SMALL_MLP, (0, 6, 2)),
    ExpertSpec("outerwear-cnn", "cnn", SMALL_CNN, (2, 4, 3), per_class=CNN_ITEMS),
    ExpertSpec("bottoms-mlp", "mlp", MLP, (1, 3, 0)),
    ExpertSpec("casual-cnn", "cnn", CNN, (0, 1, 7), per_class=CNN_ITEMS),
    ExpertSpec("sandal-boot-dress-mlp", "mlp", MLP, (5, 9, 3)),
    ExpertSpec("dress-coat-shirt-cnn", "cnn", CNN, (3, 4, 6), per_class=CNN_ITEMS),
    ExpertSpec("apparel-cnn", "cnn", CNN, (0, 1, 2, 3, 4, 6), per_class=CNN_ITEMS),
    ExpertSpec("sneaker-boot-pullover-mlp", "mlp", SMALL_MLP, (7, 9, 2)),
    ExpertSpec("weak-noisy-mlp", "mlp", SMALL_MLP, (5, 7, 9, 4), epochs=1, label_noise=0.6),
    ExpertSpec("swapped-cnn", "cnn", SMALL_CNN, (5, 7, 1), swap_heads=(0, 1)),
    ExpertSpec("tiny-shirt-cnn", "cnn", SMALL_CNN, (6, 0), per_class=20, epochs=5),
    ExpertSpec("family-footwear", "linear", HEADS, (5, 7, 9), per_class=CNN_ITEMS, epochs=3, backbone="family-cnn"),
    ExpertSpec("family-tops", "linear", HEADS, (0, 2, 4, 6), per_class=CNN_ITEMS, epochs=3, backbone="family-cnn"),
    ExpertSpec("family-trouser-dress", "linear", HEADS, (1, 3), per_class=CNN_ITEMS, epochs=3, backbone="family-cnn"),
)
BACKBONES = (ExpertSpec("family-cnn", "cnn", CNN, (0, 1, 2, 3, 4, 5, 6, 7, 9), per_class=CNN_ITEMS),)
GENERAL = general.GeneralSpec("aligned")


def training_data(spec: ExpertSpec, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (images, head targets) an expert trains on, with its noise and data cap."""
    rng = np.random.default_rng(spec.seed)
    picked = [np.flatnonzero(labels == c) for c in spec.classes]
    if spec.per_class is not None:
        picked = [rng.choice(p, min(spec.per_class, len(p)), replace=False) for p in picked]
    index = np.concatenate(picked)
    targets = np.concatenate([np.full(len(p), h, np.int32) for h, p in enumerate(picked)])
    noisy = rng.random(len(targets)) < spec.label_noise
    targets[noisy] = rng.integers(0, len(spec.classes), noisy.sum())
    return images[index], targets


def train_expert(spec: ExpertSpec, images: np.ndarray, labels: np.ndarray, backbone=None):
    """A trained model for `spec`; with `backbone`, only heads trained on its frozen features."""
    x, y = training_data(spec, images, labels)
    model = models.build(spec.arch, spec.config, len(spec.classes), seed=spec.seed)
    spec_or_none = INPUT_SPEC
    if backbone is not None:
        x, spec_or_none = engine.model_features(backbone, INPUT_SPEC, x), None
    return train.fit(model, x, y, spec_or_none, epochs=spec.epochs, batch_size=min(128, len(x)), seed=spec.seed)


def declared_heads(spec: ExpertSpec, class_names: list[str]) -> list[str]:
    heads = [class_names[c] for c in spec.classes]
    if spec.swap_heads:
        a, b = spec.swap_heads
        heads[a], heads[b] = heads[b], heads[a]
    return heads


def add_expert(hub: Hub, spec: ExpertSpec, role: str = "expert") -> None:
    """Train `spec` on the expert pool (an expert, or with role "backbone" a shared backbone); store it."""
    pool = store_lib.expert_pool(hub.store_spec)
    images, labels = pool.images, pool.labels
    names = [c["name"] for c in pool.classes]
    backbone = hub.load_backbone(spec.backbone) if spec.backbone else None
    model = train_expert(spec, images, labels, backbone)
    provenance = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("id", "arch", "config", "backbone")}
    provenance["trained_on"] = "expert pool"
    if role == "backbone":
        hub.add_backbone(spec.id, model, spec.arch, spec.config, INPUT_SPEC, provenance)
    else:
        heads = declared_heads(spec, names)
        hub.add(spec.id, model, spec.arch, spec.config, heads, INPUT_SPEC, role, provenance, spec.backbone)


def build(
    path,
    experts: tuple[ExpertSpec, ...] = DEMO_EXPERTS,
    general_spec: general.GeneralSpec | None = GENERAL,
    backbones: tuple[ExpertSpec, ...] = BACKBONES,
) -> Hub:
    """Create (or complete) the hub at `path`: trains only the models it lacks."""
    try:
        hub = Hub.open(path)
    except FileNotFoundError:
        hub = Hub.create(path)
    needed = {s.backbone for s in experts if s.backbone and s.id not in hub.entries}
    todo = [(s, "backbone") for s in backbones if s.id in needed and s.id not in hub.backbones]
    todo += [(s, "expert") for s in experts if s.id not in hub.entries]
    log.info("hub %s: %d model(s) to train", hub.path, len(todo))
    for spec, role in tqdm(todo, desc="training models", disable=not todo):
        add_expert(hub, spec, role)
    if general_spec is not None and general_spec.id not in hub.entries:
        log.info("hub %s: training the general model (%s)", hub.path, general_spec.backend)
        general.add_to_hub(hub, general_spec)
    return hub
