"""Augmentations by name: fresh random draws for every epoch, on the host (numpy)."""

from __future__ import annotations

import numpy as np

__all__ = ["AUGMENTATIONS", "augment", "check_augmentations", "flip", "shift"]


def shift(images: np.ndarray, rng: np.random.Generator, pixels: int = 2, fill: str = "constant") -> np.ndarray:
    """Each image translated by up to `pixels` in height and width, edges zero-filled (`fill` "constant") or
    repeating the edge ("edge": pictures on white stay on white)."""
    n, h, w = images.shape[:3]
    padded = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels)) + ((0, 0),) * (images.ndim - 3), mode=fill)
    dy, dx = rng.integers(0, 2 * pixels + 1, (2, n))
    rows = dy[:, None] + np.arange(h)  # [n, h]
    cols = dx[:, None] + np.arange(w)  # [n, w]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half of the images mirrored left to right."""
    mirrored = rng.random(len(images)) < 0.5
    return np.where(mirrored.reshape((-1,) + (1,) * (images.ndim - 1)), images[:, :, ::-1], images)


AUGMENTATIONS = {"shift": shift, "flip": flip}


def check_augmentations(names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {sorted(AUGMENTATIONS)}")


def augment(images: np.ndarray, names: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """`images` [N, H, W, ...] through the named augmentations, in order (a fresh draw per call)."""
    check_augmentations(names)
    for name in names:
        images = AUGMENTATIONS[name](images, rng)
    return images
