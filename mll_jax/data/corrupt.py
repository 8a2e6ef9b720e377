"""Corrupted copies of images by name, for experts trained on spoiled data (blur, sensor noise).

Unlike augmentations these are fixed: an expert sees one corrupted copy of its
training images, drawn once from its seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CORRUPTIONS", "blur", "corrupt", "noise"]


def blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 3x3 box blur (edges replicated)."""
    x = images.astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)) + ((0, 0),) * (x.ndim - 3), mode="edge")
    h, w = x.shape[1:3]
    out = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    return np.round(out).astype(np.uint8)


def noise(images: np.ndarray, rng: np.random.Generator, sigma: float = 40.0) -> np.ndarray:
    """Gaussian noise of `sigma` grey levels, clipped to [0, 255]."""
    noisy = images.astype(np.float32) + rng.normal(0.0, sigma, images.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


CORRUPTIONS = {"blur": blur, "noise": noise}


def corrupt(images: np.ndarray, name: str | None, seed: int = 0) -> np.ndarray:
    """`images` corrupted by `name` (None: unchanged)."""
    if name is None:
        return images
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[name](images, np.random.default_rng(seed))
