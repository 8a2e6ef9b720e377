"""A train split cut three ways (method.md §2): the sample store, the development split, the expert pool.

The sample store plays the role of the paper's node images: models are labelled
and selections fitted on it. The development split is where every threshold,
recipe and design choice is made (and the oracle stops early); the test split is
left to the reported results. Experts train on the expert pool only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mll_jax.configs.specs import StoreSpec
from mll_jax.data import datasets
from mll_jax.data.cuts import split_indices

__all__ = [
    "OPEN_WORLD",
    "SampleStore",
    "concept_items",
    "development",
    "expert_pool",
    "fit_mask",
    "front_rows",
    "load",
    "test",
    "train_indices",
]


OPEN_WORLD = "open_world"  # the store spec source of every domain at once (`data/world.py`)


def fit_mask(n: int) -> np.ndarray:
    """The fixed fit/validation halves of the store: True = fit (even positions)."""
    return np.arange(n) % 2 == 0


def concept_items(concepts: np.ndarray, seed: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(fit, val): per concept, the store indices of its items in that half, in one fixed shuffle per seed
    (node samples are drawn from their fronts, so a concept gives the same items to every task)."""
    order = np.random.default_rng(seed).permutation(len(concepts))
    in_fit = fit_mask(len(concepts))[order]
    concept_of = concepts[order]
    return tuple(
        {int(c): order[in_half & (concept_of == c)] for c in np.unique(concept_of)} for in_half in (in_fit, ~in_fit)
    )


def front_rows(halves: tuple[dict[int, np.ndarray], ...], per_concept: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, position): the sorted store indices among the first `per_concept` items of each concept in each
    half (and 0, a padding row), and each of the store's `size` indices' position among them (-1 if none)."""
    chosen = [items[:per_concept] for half in halves for items in half.values()]
    rows = np.unique(np.concatenate([np.zeros(1, np.int64), *chosen]))
    position = np.full(size, -1, np.int64)
    position[rows] = np.arange(len(rows))
    return rows, position


@dataclasses.dataclass(frozen=True)
class SampleStore:
    spec: StoreSpec
    images: np.ndarray  # uint8 [N, H, W, C]
    concepts: np.ndarray  # int32 [N], index into `synsets`
    synsets: tuple[str, ...]
    lemmas: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.concepts)


def _split(spec: StoreSpec) -> tuple[datasets.Dataset, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    train = datasets.load(spec.source, "train")
    return train, split_indices(train.labels, spec.per_class, spec.seed, spec.dev_per_class)


def train_indices(spec: StoreSpec = StoreSpec()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into the train split of (store, development split, expert pool)."""
    return _split(spec)[1]


def load(spec: StoreSpec = StoreSpec()) -> SampleStore:
    if spec.source == OPEN_WORLD:
        part = _open_world("store", spec)
    else:
        train, (store, _, _) = _split(spec)
        part = dataclasses.replace(train, images=train.images[store], labels=train.labels[store])
    return SampleStore(
        spec=spec,
        images=part.images,
        concepts=part.labels,
        synsets=tuple(part.synsets),
        lemmas=tuple(tuple(c.get("lemmas", [])) for c in part.classes),
    )


def _open_world(name: str, spec: StoreSpec) -> datasets.Dataset:
    from mll_jax.data import world  # here, not above: it draws every domain, with jax

    return world.load(name, spec)


def expert_pool(spec: StoreSpec = StoreSpec()) -> datasets.Dataset:
    """The train split minus the store and the development split: the only data experts may train on."""
    if spec.source == OPEN_WORLD:
        return _open_world("pool", spec)
    train, (_, _, pool) = _split(spec)
    return dataclasses.replace(train, images=train.images[pool], labels=train.labels[pool], name=f"{train.name}:pool")


def test(spec: StoreSpec = StoreSpec()) -> datasets.Dataset:
    """The test split: reported results only."""
    return _open_world("test", spec) if spec.source == OPEN_WORLD else datasets.load(spec.source, "test")


def development(spec: StoreSpec = StoreSpec()) -> datasets.Dataset:
    """The development split: where thresholds, recipes and design choices are made (never the test split)."""
    if spec.dev_per_class < 1:
        raise ValueError(
            f"this hub's store spec {spec.to_json()} has no development split (it was built before there was one); "
            "rebuild the hub in a new folder with `mll-jax --hub NEW hub build`"
        )
    if spec.source == OPEN_WORLD:
        return _open_world("development", spec)
    train, (_, dev, _) = _split(spec)
    return dataclasses.replace(train, images=train.images[dev], labels=train.labels[dev], name=f"{train.name}:dev")
