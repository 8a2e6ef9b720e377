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

__all__ = ["SPLITS", "STYLE_SPLITS", "VIEWS"]

SPLITS = ("store", "pool", "development", "test")
STYLE_SPLITS = {
    "store": ("emoji:google",),
    "pool": ("emoji:twitter", "emoji:fluent_flat"),
    "development": ("emoji:fluent_3d",),
    "test": ("emoji:openmoji", "photos"),
}
VIEWS = 8  # augmented views of each store, pool and development picture (a style draws a concept once or twice)
