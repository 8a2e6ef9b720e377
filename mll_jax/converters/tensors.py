"""Shared tensor bookkeeping: a checkpoint's tensors read by name (each used once), written into Flax parameters.

A missing, unused or misshapen tensor is a ValueError naming it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax.nets import vit

__all__ = [
    "Converted",
    "Tensors",
    "Weights",
    "check_filled",
    "config_fields",
    "set_batch_norm",
    "set_conv",
    "set_param",
    "unfilled",
]


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


class Weights(Tensors):
    """`Tensors` with setters for PyTorch's Linear, LayerNorm, Conv2d and the pre-norm block, by checkpoint name."""

    def param(
        self, param: nnx.Variable, name: str, transform: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        value = self.take(name)
        if transform is not None:
            try:
                value = np.ascontiguousarray(transform(value))
            except ValueError:  # a reshape or transpose that cannot apply: the shape is wrong
                raise ValueError(f"{name}: shape {value.shape} does not fit the architecture's {param.shape}") from None
        set_param(param, value, name)

    def linear(self, layer: nnx.Linear, name: str) -> None:
        self.param(layer.kernel, f"{name}.weight", lambda w: w.T)  # PyTorch stores [out, in]
        if layer.bias is not None:
            self.param(layer.bias, f"{name}.bias")

    def norm(self, layer: nnx.LayerNorm, name: str) -> None:
        self.param(layer.scale, f"{name}.weight")
        self.param(layer.bias, f"{name}.bias")

    def conv(self, layer: nnx.Conv, name: str) -> None:
        bias = self.take(f"{name}.bias") if layer.bias is not None else None
        set_conv(layer, self.take(f"{name}.weight"), bias, name)

    def block(self, block: vit.Block, prefix: str, names: dict[str, str]) -> None:
        """A pre-norm `vit.Block` from the tensors under `prefix`; `names` maps its attributes to checkpoint names."""
        for attribute in ("query", "key", "value", "attention_out", "fc1", "fc2"):
            self.linear(getattr(block, attribute), f"{prefix}.{names[attribute]}")
        for attribute in ("norm1", "norm2"):
            self.norm(getattr(block, attribute), f"{prefix}.{names[attribute]}")

    def skip(self, names: Iterable[str]) -> None:
        """Mark tensors as used without reading them: parts of the checkpoint the model has no use for."""
        self.used.update(name for name in names if name in self)


def check_filled(model: nnx.Module) -> None:
    """A RuntimeError if an abstract model still has variables without values (a converter bug, not the file's)."""
    if gaps := unfilled(model):
        raise RuntimeError(f"the converter left {gaps[:5]} without values")
