"""The sample store: a labelled slice of a train split, disjoint from expert data (method.md §2).

It plays the role of the paper's node images: models are labelled and selections
fitted on it; experts never train on it, and evaluation uses the test split.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mll_jax.configs.specs import StoreSpec
from mll_jax.data import datasets


def split_indices(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train indices of (store, pool): `per_class` random items per class go to the store."""
    order = np.random.default_rng(seed).permutation(len(labels))
    store = np.concatenate([order[labels[order] == c][:per_class] for c in np.unique(labels)])
    store = np.sort(store)
    pool = np.setdiff1d(np.arange(len(labels)), store)
    return store, pool


def fit_mask(n: int) -> np.ndarray:
    """The fixed fit/validation halves of the store: True = fit (even positions)."""
    return np.arange(n) % 2 == 0


@dataclasses.dataclass(frozen=True)
class SampleStore:
    spec: StoreSpec
    images: np.ndarray  # uint8 [N, H, W, C]
    concepts: np.ndarray  # int32 [N], index into `synsets`
    synsets: tuple[str, ...]
    lemmas: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.concepts)


def load(spec: StoreSpec = StoreSpec()) -> SampleStore:
    train = datasets.load(spec.source, "train")
    store, _ = split_indices(train.labels, spec.per_class, spec.seed)
    return SampleStore(
        spec=spec,
        images=train.images[store],
        concepts=train.labels[store],
        synsets=tuple(train.synsets),
        lemmas=tuple(tuple(c.get("lemmas", [])) for c in train.classes),
    )


def expert_pool(spec: StoreSpec = StoreSpec()) -> datasets.Dataset:
    """The train split minus the store: the only data experts may train on."""
    train = datasets.load(spec.source, "train")
    _, pool = split_indices(train.labels, spec.per_class, spec.seed)
    return dataclasses.replace(train, images=train.images[pool], labels=train.labels[pool])
