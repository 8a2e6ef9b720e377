"""A user's own images as a source, `folder:PATH`: one sub-folder per class, a catalog naming each class's noun.

    PATH/catalog.json          classes: name (the sub-folder), synset, lemmas; written by
                               `mll-jax sources match PATH` (read it, and fix what it got wrong)
    PATH/<split>/<class>/*     with split folders (train, test, ...), or
    PATH/<class>/*             without: the folder is one split, "all"

Images are PNG, JPEG, WebP, ... (what Pillow reads), all of one size; grey images stay
one channel, others become RGB. Classes are the sub-folders in sorted order; files in
sorted order, so a folder gives the same arrays every time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["CATALOG", "class_folders", "load"]

CATALOG = "catalog.json"
WHOLE = "all"


SPLIT_FOLDERS = ("train", "test", "validation")


def _split_names(path: Path) -> list[str]:
    """The split folders the image folder at `path` has (none: it is one split)."""
    return sorted(p.name for p in path.iterdir() if p.is_dir() and p.name in SPLIT_FOLDERS)


def _root(path: Path, split: str) -> Path:
    splits = _split_names(path)
    if splits:
        if split not in splits:
            raise ValueError(f"{path} has splits {splits}, not {split!r}")
        return path / split
    if split != WHOLE:
        raise ValueError(f"{path} has no split folders (train/, test/): it is one split; load it with split={WHOLE!r}")
    return path


def class_folders(path: Path) -> list[str]:
    """The class names of the image folder at `path`: its sub-folders (within each split), sorted."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no image folder at {path}")
    roots = [path / name for name in _split_names(path)] or [path]
    names = sorted({c.name for root in roots for c in root.iterdir() if c.is_dir()})
    if not names:
        raise ValueError(f"{path} has no class folders: put each class's images in a sub-folder named for it")
    return names


def _catalog(path: Path) -> list[dict]:
    file = path / CATALOG
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: run `mll-jax sources match {path}` to name each class folder's WordNet noun "
            "(then read it and fix what it got wrong)"
        )
    classes = json.loads(file.read_text())["classes"]
    folders = class_folders(path)
    if [c["name"] for c in classes] != folders:
        raise ValueError(f"{file} names classes {[c['name'] for c in classes]}, the folder has {folders}; match again")
    missing = [c["name"] for c in classes if not c.get("synset")]
    if missing:
        raise ValueError(f'{file} gives no synset for {missing}: write one for each (e.g. "dog.n.01")')
    return [c | {"label": i} for i, c in enumerate(classes)]


def _read(file: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(file) as picture:
        grey = picture.mode in ("L", "I;16", "1")
        return np.asarray(picture.convert("L" if grey else "RGB"))


def load(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(images uint8 [N, H, W, C], labels int32 [N], catalog classes) of `split` of the image folder at `path`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no image folder at {path}")
    classes = _catalog(path)
    root = _root(path, split)
    images, labels = [], []
    for c in classes:
        folder = root / c["name"]
        for file in sorted(folder.iterdir()) if folder.is_dir() else []:
            if file.is_file() and not file.name.startswith("."):
                try:
                    images.append(_read(file))
                except OSError as error:
                    raise ValueError(f"{file} is not an image Pillow reads ({error}); remove it") from None
                labels.append(c["label"])
    if not images:
        raise ValueError(f"{root} holds no images")
    if len({i.ndim for i in images}) > 1:
        raise ValueError(f"{root} mixes grey and colour images; convert them to one kind")
    shapes = {i.shape for i in images}
    if len(shapes) > 1:
        raise ValueError(f"{root}: images of {len(shapes)} shapes {sorted(shapes)[:4]}; resize them to one size")
    stacked = np.stack(images)
    stacked = stacked[..., None] if stacked.ndim == 3 else stacked
    stacked.setflags(write=False)
    return stacked, np.asarray(labels, np.int32), classes
