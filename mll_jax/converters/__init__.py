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
import inspect
import json
from collections.abc import Callable
from pathlib import Path

import jax
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
    param.set_value(jnp.asarray(value, param.dtype))  # not `param[...] =`: this also fills an abstract model


def config_fields(config: dict, cls: type) -> dict:
    """The fields of a Hugging Face config that `cls`'s constructor takes; absent ones keep its defaults."""
    names = set(inspect.signature(cls.__init__).parameters) - {"self", "num_heads", "rngs"}
    return {k: v for k, v in config.items() if k in names}


def unfilled(model: nnx.Module) -> list[str]:
    """Variables of an abstract model (`models.abstract`) that no checkpoint tensor was written into.

    Converters of large models start from an abstract one: random initialisation costs
    seconds of compiling per layer shape, and every value is overwritten anyway.
    """
    leaves = jax.tree_util.tree_leaves_with_path(nnx.state(model))
    return [jax.tree_util.keystr(path) for path, x in leaves if isinstance(x, jax.ShapeDtypeStruct)]


class Tensors:
    """A checkpoint's tensors, read by name: a missing one is a ValueError naming it, and
    the ones never read can be listed (a layout that leaves weights unused is wrong)."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.tensors = tensors
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def take(self, name: str) -> np.ndarray:
        if name not in self.tensors:
            raise ValueError(f"the checkpoint has no tensor {name!r}")
        self.used.add(name)
        return np.asarray(self.tensors[name], np.float32)

    def check_all_used(self, layout: str) -> None:
        """A ValueError naming the tensors that `layout` did not use."""
        unused = sorted(set(self.tensors) - self.used)
        if unused:
            more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
            raise ValueError(f"tensors the {layout} layout does not use: {unused[:5]}{more}")


def set_conv(conv: nnx.Conv, weight: np.ndarray, bias: np.ndarray | None, name: str) -> None:
    """Write a PyTorch Conv2d's `name`.weight (OIHW) and bias into an nnx.Conv (HWIO); no bias is zero."""
    if weight.ndim != 4:
        raise ValueError(f"{name}.weight has rank {weight.ndim}, not a Conv2d's 4")
    set_param(conv.kernel, np.ascontiguousarray(weight.transpose(2, 3, 1, 0)), f"{name}.weight")
    if conv.bias is not None:
        set_param(conv.bias, np.zeros(weight.shape[0], np.float32) if bias is None else bias, f"{name}.bias")
    elif bias is not None:
        raise ValueError(f"{name}.bias: the architecture's convolution has no bias")


def set_batch_norm(norm: nnx.BatchNorm, tensors: Tensors, prefix: str, affine: bool = True) -> None:
    """Write a PyTorch BatchNorm's `prefix`.weight/bias/running_mean/running_var into an nnx.BatchNorm.

    `affine=False` (PyTorch's BatchNorm2d(affine=False)) has no weight and bias: scale 1, shift 0.
    The step counter num_batches_tracked only matters to training with momentum=None; it is read and dropped.
    """
    for part, variable in [("running_mean", norm.mean), ("running_var", norm.var)]:
        set_param(variable, tensors.take(f"{prefix}.{part}"), f"{prefix}.{part}")
    if affine:
        set_param(norm.scale, tensors.take(f"{prefix}.weight"), f"{prefix}.weight")
        set_param(norm.bias, tensors.take(f"{prefix}.bias"), f"{prefix}.bias")
    else:
        set_param(norm.scale, np.ones(norm.scale.shape, np.float32), f"{prefix} (no weight)")
        set_param(norm.bias, np.zeros(norm.bias.shape, np.float32), f"{prefix} (no bias)")
    if f"{prefix}.num_batches_tracked" in tensors:
        tensors.take(f"{prefix}.num_batches_tracked")


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


from mll_jax.converters import hf_resnet, hf_vit, torch_sequential, torchvision_resnet  # noqa: E402,F401  (register)
