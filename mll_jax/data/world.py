"""The open world as one dataset per split (issue rules in `configs/open_world.py`): every domain on one canvas,
labelled with one concept index.

The concepts are the emoji catalog's, in its order (so emoji and photograph labels
stay as they are), then each by-image domain's concepts it lacks, matched by
synset (Fashion-MNIST's dress, coat and bag are emoji concepts too). Emoji and
photographs are split by style (`open_world.split`); Fashion-MNIST and the digits
by image, with the store spec's counts (their expert pool capped at
`POOL_PER_CLASS` a class). Images of other sizes or channel counts are drawn on
the canvas as the engine's preprocessing converts them (`data.preprocess.to_shape`),
so a 28x28 grey expert sees them back at its own shape.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from mll_jax.configs.open_world import BY_IMAGE, CANVAS, POOL_PER_CLASS, STORE_SPEC, VIEWS
from mll_jax.configs.specs import StoreSpec
from mll_jax.data import datasets, open_world
from mll_jax.data.cuts import split_indices
from mll_jax.data.preprocess import to_shape

__all__ = ["CANVAS_SPLITS", "catalog", "load", "on_canvas", "sources"]

CANVAS_SPLITS = ("store", "pool", "development", "test")
_CANVAS_BATCH = 4096


@functools.cache
def catalog() -> tuple[dict, ...]:
    """The open world's concepts: the emoji catalog's, then each by-image domain's that it lacks."""
    classes = [dict(c) for c in datasets.catalog("emoji")["classes"]]
    seen = {c["synset"] for c in classes}
    for source in BY_IMAGE:
        for c in datasets.catalog(source)["classes"]:
            if c["synset"] not in seen:
                seen.add(c["synset"])
                classes.append({**c, "label": len(classes)})
    return tuple(classes)


def on_canvas(images: np.ndarray) -> np.ndarray:
    """uint8 images of any size, grey or RGB, as uint8 `CANVAS` images (rounded)."""
    if images.shape[1:] == CANVAS:
        return images
    out = [
        np.asarray(jnp.round(to_shape(jnp.asarray(images[i : i + _CANVAS_BATCH], jnp.float32), CANVAS)))
        for i in range(0, len(images), _CANVAS_BATCH)
    ]
    return np.clip(np.concatenate(out), 0, 255).astype(np.uint8)


def _by_image(source: str, name: str, spec: StoreSpec) -> datasets.Dataset:
    """`source`'s part of split `name`: its test split, or its train split cut as the store spec says (the pool
    part: at most `POOL_PER_CLASS` of a class's pool rows, drawn with the spec's seed)."""
    if name == "test":
        return datasets.load(source, "test")
    train = datasets.load(source, "train")
    store_rows, development_rows, pool_rows = split_indices(train.labels, spec.per_class, spec.seed, spec.dev_per_class)
    rows = {"store": store_rows, "development": development_rows, "pool": pool_rows}[name]
    if name == "pool":
        rng = np.random.default_rng([spec.seed, 2])
        by_class = [rows[train.labels[rows] == c] for c in np.unique(train.labels[rows])]
        rows = np.sort(np.concatenate([rng.permutation(r)[:POOL_PER_CLASS] for r in by_class]))
    return datasets.Dataset(train.images[rows], train.labels[rows], train.classes, f"{source}:{name}")


@functools.cache
def load(name: str, spec: StoreSpec = STORE_SPEC, views: int = VIEWS) -> datasets.Dataset:
    """The open world's split `name` (one of `CANVAS_SPLITS`) on the canvas: its emoji styles (and photographs),
    with `views` augmented views of each picture outside test, then every by-image domain's part. Read-only,
    drawn once per process."""
    if name not in CANVAS_SPLITS:
        raise ValueError(f"the open world has no split {name!r}; use one of {list(CANVAS_SPLITS)}")
    classes = catalog()
    label = {c["synset"]: c["label"] for c in classes}
    styles = open_world.split(name, 0 if name == "test" else views, seed=spec.seed)  # emoji labels: a prefix
    parts = [(styles.images, styles.labels)]
    for source in BY_IMAGE:
        part = _by_image(source, name, spec)
        to_world = np.array([label[c["synset"]] for c in part.classes], np.int32)
        parts.append((on_canvas(part.images), to_world[part.labels]))
    images = np.concatenate([p[0] for p in parts])
    images.setflags(write=False)
    return datasets.Dataset(images, np.concatenate([p[1] for p in parts]), classes, f"open_world:{name}")


def sources(name: str, spec: StoreSpec = STORE_SPEC, views: int = VIEWS) -> np.ndarray:
    """Which source or style each row of `load(name, spec, views)` comes from ("photos", "emoji:openmoji",
    "mnist", ...): the rows of one domain's pictures, such as the test split's photographs."""
    if name not in CANVAS_SPLITS:
        raise ValueError(f"the open world has no split {name!r}; use one of {list(CANVAS_SPLITS)}")
    styles = open_world.sources(name, 0 if name == "test" else views)
    by_image = [np.full(len(_by_image(source, name, spec)), source, dtype=object) for source in BY_IMAGE]
    return np.concatenate([styles, *by_image])
