"""Converters: checkpoints of other frameworks -> hub entries (architecture, config, parameters).

Each converter is a function `convert(tensors, input_spec, **layout) -> Converted`
registered by name, and the command `mll-jax convert <name> PATH ...`. PATH is a
state_dict file, or a Hugging Face model directory (`config.json` plus
`model.safetensors`), whose config reaches the converter as `config=`.
Checkpoints are read as tensors only (safetensors, or
`torch.load(weights_only=True)`): no code from a file ever runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

CONVERTERS: dict[str, Callable[..., Converted]] = {}


@dataclasses.dataclass
class Converted:
    arch: str
    config: dict
    model: nnx.Module
    heads: list[str] | None = None  # class names the checkpoint itself gives its outputs (HF id2label)


def set_param(param, value: np.ndarray, name: str) -> None:
    """Write `value` into a model parameter, or a ValueError naming the checkpoint tensor `name`."""
    if tuple(param.shape) != value.shape:
        raise ValueError(f"{name}: shape {value.shape} does not fit the architecture's {tuple(param.shape)}")
    param[...] = jnp.asarray(value, param.dtype)


def register(name: str):
    def add(fn):
        CONVERTERS[name] = fn
        return fn

    return add


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Name -> array from a .safetensors file or a PyTorch state_dict file (.pt, .pth, .bin)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            import torch
        except ImportError:
            raise ImportError(f"reading {path} needs PyTorch (pip install torch); or save it as safetensors") from None
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, never code
        except Exception as error:
            raise ValueError(f"{path} is not a plain state_dict of tensors ({type(error).__name__}: {error})") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise ValueError(f"{path} holds {type(loaded).__name__}, not a state_dict (a dict of tensors)")
        return {k: v.detach().float().numpy() for k, v in loaded.items()}
    raise ValueError(f"{path}: unknown checkpoint type {path.suffix!r}; use .safetensors, .pt, .pth or .bin")


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(path: str | Path) -> Path:
    """The weights of a checkpoint: the file itself, or a Hugging Face directory's weights file."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path} is a directory without {' or '.join(WEIGHT_FILES)}")


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """(tensors, config): a state_dict file has no config; a Hugging Face directory has its config.json."""
    path = Path(path)
    if not path.is_dir():
        return read_tensors(path), None
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is a directory without config.json; is it a Hugging Face model directory?")
    return read_tensors(weights_file(path)), json.loads((path / "config.json").read_text())


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(converter: str, path: str | Path, input_spec: dict, **layout) -> Converted:
    """Convert the checkpoint (file or Hugging Face directory) at `path` with the converter named `converter`."""
    if converter not in CONVERTERS:
        raise ValueError(f"unknown converter {converter!r}; known: {sorted(CONVERTERS)}")
    tensors, config = read_checkpoint(path)
    if config is not None:
        layout = {**layout, "config": config}
    return CONVERTERS[converter](tensors, input_spec=input_spec, **layout)


def add_to_hub(
    hub, model_id: str, converter: str, path: str | Path, heads: list[str] | None, input_spec: dict, **layout
) -> Converted:
    """Convert the checkpoint at `path` with `converter` and add it to `hub` as `model_id`.

    `heads` names the outputs; None takes the names the checkpoint gives (a Hugging Face `id2label`).
    """
    converted = convert(converter, path, input_spec, **layout)
    heads = heads or converted.heads
    if not heads:
        raise ValueError(f"{path} does not name its outputs; pass the class name of each (--heads)")
    provenance = {"converter": converter, "source": str(path), "source_sha256": file_digest(weights_file(path))}
    provenance.update({k: v for k, v in layout.items() if k != "config"})
    hub.add(model_id, converted.model, converted.arch, converted.config, heads, input_spec, provenance=provenance)
    return converted


from mll_jax.converters import torch_sequential  # noqa: E402,F401  (registers itself)
