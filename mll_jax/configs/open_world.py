"""The open world's splits by style (issue rule, fixed before any model met an emoji or a photograph).

An emoji style lies wholly in one split, never cut by image; photographs only in the
test split; digits and Fashion-MNIST keep their own train/test cut. Which style goes
where was chosen by hand for what each split is for, not by any measurement:
- store: Noto (google), the most widely shown rendering, as the paper's node images;
- pool: Twemoji and Fluent flat, two styles so that experts meet more than one hand;
- development: Fluent 3D, for every design choice;
- test: OpenMoji (line art, the farthest from the others) and the photographs.
Augmented views are drawn from a split's own pictures only (`data/open_world.py`).
"""

from __future__ import annotations

from mll_jax.configs.specs import StoreSpec

__all__ = ["BY_IMAGE", "CANVAS", "POOL_PER_CLASS", "SPLITS", "STORE_SPEC", "STYLE_SPLITS", "VIEWS"]

SPLITS = ("store", "pool", "development", "test")
STYLE_SPLITS = {
    "store": ("emoji:google",),
    "pool": ("emoji:twitter", "emoji:fluent_flat"),
    "development": ("emoji:fluent_3d",),
    "test": ("emoji:openmoji", "photos"),
}
VIEWS = 8  # augmented views of each store, pool and development picture (a style draws a concept once or twice)
# Domains cut by image, as Fashion-MNIST is today: per class, `STORE_SPEC.per_class` train images to the store and
# `dev_per_class` to development, the rest to the pool; their own test split to test. The 8x8 digits are a second
# hand of handwriting.
BY_IMAGE = ("fashion_mnist", "mnist", "sklearn_digits")
# The most pool images of a class of a by-image domain that the open world's experts may train on, set by hand for
# memory and time, not measured against any result: the pool lives on the canvas (12 KB an image), where
# Fashion-MNIST's whole pool would be 730 MB and 27 s to draw (the 28x28 digits have about 770 a class).
POOL_PER_CLASS = 1000
# 30 a class, set by hand before any measurement: the 8x8 digits have about 150 train images a class (30 + 30 leave
# a pool of about 90), and an emoji concept has 9 store pictures (one drawing and its 8 views).
STORE_SPEC = StoreSpec(source="open_world", per_class=30, dev_per_class=30)
CANVAS = (64, 64, 3)  # every open-world store, development and test image: emoji are drawn at 64 px in RGB
