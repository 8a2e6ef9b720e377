"""The open world's emoji and photograph splits (`configs/open_world.py`): whole styles, labels of one catalog.

Every split's labels index the emoji catalog's concepts (photographs of concepts it
lacks are left out). A split's augmented views (shifted with the edge repeated, then flipped: `augment.py`) are
drawn from its own pictures only, so no picture, nor a view of one, is in two splits.
"""

from __future__ import annotations

import numpy as np

from mll_jax.configs.open_world import SPLITS, STYLE_SPLITS
from mll_jax.data import augment, datasets

__all__ = ["sources", "split"]


def _source(source: str) -> datasets.Dataset:
    """`source` whole, its labels as the emoji catalog's."""
    if source != "photos":
        return datasets.load(source, datasets.WHOLE)
    photos, classes = datasets.load("photos", "test"), datasets.catalog("emoji")["classes"]
    label = {c["synset"]: c["label"] for c in classes}
    mapped = np.array([label.get(photos.classes[y]["synset"], -1) for y in photos.labels], np.int32)
    keep = mapped >= 0
    return datasets.Dataset(photos.images[keep], mapped[keep], tuple(classes), "photos")


def split(name: str, views: int = 0, seed: int = 0) -> datasets.Dataset:
    """The open world's `name` split (one of `SPLITS`): every picture of its styles, then `views` augmented views
    of each (drawn with `seed`), labelled with the emoji catalog's concepts."""
    if name not in SPLITS:
        raise ValueError(f"unknown open-world split {name!r}; use one of {list(SPLITS)}")
    if views and name == "test":
        raise ValueError("the test split is scored as drawn: no augmented views of it")
    parts = [_source(source) for source in STYLE_SPLITS[name]]
    images = np.concatenate([p.images for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    rng = np.random.default_rng(seed)
    drawn = [augment.flip(augment.shift(images, rng, fill="edge"), rng) for _ in range(views)]
    all_images = np.concatenate([images, *drawn])
    all_images.setflags(write=False)
    return datasets.Dataset(all_images, np.tile(labels, views + 1), parts[0].classes, f"open_world:{name}")


def sources(name: str, views: int = 0) -> np.ndarray:
    """Which style each row of `split(name, views)` comes from ("emoji:openmoji", "photos", ...)."""
    if name not in SPLITS:
        raise ValueError(f"unknown open-world split {name!r}; use one of {list(SPLITS)}")
    names = np.concatenate([np.full(len(_source(s)), s, dtype=object) for s in STYLE_SPLITS[name]])
    return np.tile(names, views + 1)
