"""Pictures as the sources give them (PIL images, any size, with transparency) to uint8 RGB arrays on white."""

from __future__ import annotations

import numpy as np

__all__ = ["on_white"]


def on_white(picture, size: int) -> np.ndarray:
    """A PIL image as uint8 RGB [size, size, 3]: scaled to fit (its aspect kept), centred, transparency over white."""
    from PIL import Image

    picture = picture.convert("RGBA")
    scale = size / max(picture.size)
    fitted = tuple(max(1, round(side * scale)) for side in picture.size)
    if fitted != picture.size:
        picture = picture.resize(fitted, Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    canvas.alpha_composite(picture, ((size - fitted[0]) // 2, (size - fitted[1]) // 2))
    return np.asarray(canvas.convert("RGB"))
