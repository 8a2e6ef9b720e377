"""Photographs: the photo cut-outs of Debian's `tuxpaint-stamps-default` (PNG stamps filed in a noun hierarchy).

A stamp is a PNG with a transparent background and a `.txt` whose first line describes
it in English ("A badger."). Only stamps of thing folders (animals, food, plants,
vehicles, household, clothes, ...) outside `cartoon` folders are photographs here;
which noun each pictures is the `photos` catalog's business
(`concepts/photo_catalog.py`). Photographs are a test-only style of the open world:
the source has one split, "test". Pictures are 64×64 RGB on white, aspect kept.
"""

from __future__ import annotations

from mll_jax.data import packages
from mll_jax.data.drawing import on_white

__all__ = ["PACKAGE", "SIZE", "STAMPS", "description", "picture", "stamps"]

PACKAGE = "tuxpaint-stamps-default"
STAMPS = "usr/share/tuxpaint/stamps"
SIZE = 64  # as the emoji styles


def stamps() -> list[str]:
    """Every PNG stamp, as its path under the stamps folder (sorted)."""
    return [m.removeprefix(STAMPS + "/") for m in packages.members(PACKAGE, STAMPS) if m.endswith(".png")]


def description(stamp: str) -> str:
    """The stamp's English description (the first line of its .txt), or '' if it has none."""
    try:
        text = packages.path(PACKAGE, f"{STAMPS}/{stamp.removesuffix('.png')}.txt").read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text.splitlines()[0].strip() if text.strip() else ""


def picture(stamp: str):
    """The stamp as uint8 RGB [SIZE, SIZE, 3] on white."""
    from PIL import Image

    with Image.open(packages.path(PACKAGE, f"{STAMPS}/{stamp}")) as image:
        return on_white(image, SIZE)
