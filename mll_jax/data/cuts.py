"""A labelled train split cut per class into the sample store, the development split and the expert pool
(method.md §2), for every source that is cut by image."""

from __future__ import annotations

import numpy as np

__all__ = ["split_indices"]


def split_indices(
    labels: np.ndarray, per_class: int, seed: int, dev_per_class: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train indices of (store, dev, pool), disjoint and sorted.

    Per class, in one seeded random order: the first `per_class` items go to the
    store, the next `dev_per_class` to the development split, the rest to the pool
    (so adding a development split leaves the store as it was).
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    by_class = [order[labels[order] == c] for c in np.unique(labels)]
    short = [int(c) for c, items in zip(np.unique(labels), by_class) if len(items) <= per_class + dev_per_class]
    if short:
        raise ValueError(
            f"classes {short} have too few train items for {per_class} store and {dev_per_class} development "
            "items each and an expert pool; lower StoreSpec.per_class or dev_per_class"
        )
    store = np.sort(np.concatenate([items[:per_class] for items in by_class]))
    dev = np.sort(np.concatenate([items[per_class : per_class + dev_per_class] for items in by_class]))
    pool = np.setdiff1d(np.arange(len(labels)), np.concatenate([store, dev]))
    return store, dev, pool
