"""Image datasets: Fashion-MNIST from Debian's IDX files, handwritten digits (`digits.py`), emoji styles
(`emoji.py`), photographs (`photos.py`), a folder of one's own images (`folder.py`), or `tfds:<name>`.

A dataset is plain arrays: images uint8 [N, H, W, C], labels int32 [N], plus the
catalog of its classes (name, WordNet synset, extra lemmas) shipped as package data.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "Dataset",
    "FASHION_MNIST_DIR",
    "SOURCES",
    "WHOLE",
    "catalog",
    "catalog_text",
    "emoji_style",
    "fashion_mnist",
    "load",
    "photographs",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_MNIST_HINT = "sudo apt-get install dataset-fashion-mnist"
_SPLIT_FILES = {"train": "train", "test": "t10k"}
_SPLIT_SIZES = {"train": 60_000, "test": 10_000}
_IDX_IMAGES, _IDX_LABELS = 2051, 2049


@dataclasses.dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int32 [N], index into `classes`
    classes: tuple[dict, ...]  # catalog entries: label, name, synset, lemmas
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def synsets(self) -> list[str]:
        return [c["synset"] for c in self.classes]


def catalog(name: str) -> dict:
    """The packaged class catalog of dataset `name` (e.g. 'fashion_mnist')."""
    try:
        text = resources.files("mll_jax.data.catalogs").joinpath(f"{name}.json").read_text()
    except FileNotFoundError:
        raise ValueError(f"no class catalog for dataset {name!r}") from None
    return json.loads(text)


def catalog_text(entry: dict) -> str:
    """A catalog as its JSON file is written: its fields indented, one line per class (readable diffs)."""
    head = json.dumps({k: v for k, v in entry.items() if k != "classes"}, indent=2)[:-2]
    lines = ",\n".join("    " + json.dumps(c) for c in entry["classes"])
    return f'{head},\n  "classes": [\n{lines}\n  ]\n}}\n'


def _read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"Fashion-MNIST file {path} is missing. Install it with: {_FASHION_MNIST_HINT}")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = np.frombuffer(raw[:8], dtype=">i4")
    if header[0] != magic:
        raise ValueError(f"{path}: IDX magic number {header[0]}, expected {magic}")
    if header[1] != count:
        raise ValueError(f"{path}: holds {header[1]} items, expected {count}")
    dims = [count] + ([28, 28] if magic == _IDX_IMAGES else [])
    offset = 4 * (1 + len(dims))
    if magic == _IDX_IMAGES:
        rows_cols = tuple(np.frombuffer(raw[8:16], dtype=">i4"))
        if rows_cols != (28, 28):
            raise ValueError(f"{path}: images are {rows_cols}, expected (28, 28)")
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data, expected {int(np.prod(dims))}")
    return data.reshape(dims)


@functools.cache
def fashion_mnist(split: str, root: Path = FASHION_MNIST_DIR) -> Dataset:
    """Fashion-MNIST `split` ('train' or 'test') from the Debian package's IDX files."""
    if split not in _SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(_SPLIT_FILES)}")
    stem, count = _SPLIT_FILES[split], _SPLIT_SIZES[split]
    images = _read_idx(root / f"{stem}-images-idx3-ubyte.gz", _IDX_IMAGES, count)
    labels = _read_idx(root / f"{stem}-labels-idx1-ubyte.gz", _IDX_LABELS, count)
    if labels.max() > 9:
        raise ValueError(f"{root}: label {labels.max()} out of range 0..9")
    images.setflags(write=False)
    return Dataset(
        images=images[..., None],
        labels=labels.astype(np.int32),
        classes=tuple(catalog("fashion_mnist")["classes"]),
        name="fashion_mnist",
    )


def _tfds(name: str, split: str) -> Dataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(f"source 'tfds:{name}' needs tensorflow-datasets: pip install 'mll_jax[tfds]'") from None
    images, labels = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
    return Dataset(
        images=np.asarray(images, np.uint8),
        labels=np.asarray(labels, np.int32),
        classes=tuple(catalog(name)["classes"]),
        name=name,
    )


SOURCES = ("fashion_mnist", "mnist", "sklearn_digits", "emoji:<style>", "photos", "folder:<path>", "tfds:<name>")
WHOLE = "all"  # the one split of an emoji style: the open world splits by style, never by image


@functools.cache
def photographs() -> Dataset:
    """Every photograph of the photos catalog's concepts (Tux Paint's stamps)."""
    from mll_jax.data import photos

    classes = tuple(catalog("photos")["classes"])
    kept = [(c["label"], stamp) for c in classes for stamp in c["stamps"]]
    images = np.stack([photos.picture(stamp) for _, stamp in kept])
    images.setflags(write=False)
    labels = np.array([label for label, _ in kept], np.int32)
    return Dataset(images=images, labels=labels, classes=classes, name="photos")


@functools.cache
def emoji_style(style: str) -> Dataset:
    """Every picture `style` draws of the emoji catalog's concepts (labels index the catalog, shared by styles)."""
    from mll_jax.data import emoji  # PIL and the SVG drawer: only for emoji

    classes = tuple(catalog("emoji")["classes"])
    codes = [(c["label"], code) for c in classes for code in c["emoji"]]
    drawn = emoji.pictures(style, [code for _, code in codes])
    kept = [(label, code) for label, code in codes if code in drawn]
    images = np.stack([drawn[code] for _, code in kept])
    images.setflags(write=False)
    labels = np.array([label for label, _ in kept], np.int32)
    return Dataset(images=images, labels=labels, classes=classes, name=f"emoji:{style}")


def load(source: str, split: str) -> Dataset:
    """Load `split` ('train' or 'test') of `source`, one of `SOURCES`."""
    if source == "fashion_mnist":
        return fashion_mnist(split)
    if source in ("mnist", "sklearn_digits"):
        from mll_jax.data import digits  # its package reader imports 30 ms of modules that only digits need

        images, labels = getattr(digits, source)(split)
        return Dataset(images=images, labels=labels, classes=tuple(catalog(source)["classes"]), name=source)
    if source.startswith("emoji:"):
        if split != WHOLE:
            raise ValueError(
                f"an emoji style is one split of the open world ({source!r} lies wholly in the store, the expert "
                f"pool, development or test); load it whole with split={WHOLE!r}, got {split!r}"
            )
        return emoji_style(source.removeprefix("emoji:"))
    if source == "photos":
        if split != "test":
            raise ValueError(
                f"photographs are a test-only style of the open world: load them with split='test', not {split!r}"
            )
        return photographs()
    if source.startswith("folder:"):
        from mll_jax.data import folder

        images, labels, classes = folder.load(Path(source.removeprefix("folder:")).expanduser(), split)
        return Dataset(images=images, labels=labels, classes=tuple(classes), name=source)
    if source.startswith("tfds:"):
        return _tfds(source.removeprefix("tfds:"), split)
    raise ValueError(f"unknown data source {source!r}; use one of {', '.join(SOURCES)}")
