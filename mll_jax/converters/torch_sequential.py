"""PyTorch `nn.Sequential` MLP / CNN stacks -> the `mlp` and `cnn` architectures.

The layer mapping comes from the state_dict's structure: `<i>.weight` of rank 2 is
a Linear, of rank 4 a Conv2d, in index order, and a group with running statistics
right after a conv is its BatchNorm2d. Linear stacks become `mlp`; convs (all with
a batch norm, or none) followed by exactly two Linears (dense, heads) become `cnn`.
What a state_dict does not hold, the caller says: the convs' stride and padding,
and the input shape (images are NHWC here, NCHW in PyTorch, so the first Linear
after a flatten is permuted to match).
"""

from __future__ import annotations

import re

import numpy as np

from mll_jax.converters.registry import register
from mll_jax.converters.tensors import Converted, Tensors, set_batch_norm, set_conv, set_param
from mll_jax.nets import registry as models

__all__ = ["convert", "layers"]

_KEY = re.compile(r"^(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_RUNNING = ("running_mean", "running_var", "num_batches_tracked")  # what makes a tensor group a batch norm


def layers(tensors: dict[str, np.ndarray]) -> tuple[list[tuple[str, np.ndarray, np.ndarray | None]], dict[str, str]]:
    """(name, weight, bias) per Linear/Conv2d in order, and conv name -> the name of its batch norm.

    A group with running statistics is a BatchNorm2d; it must come right after a conv
    (index + 1; the ReLU follows it). An unexpected tensor is an error naming it.
    """
    by_index: dict[int, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        match = _KEY.match(key)
        if not match:
            raise ValueError(
                f"unexpected tensor {key!r}; an nn.Sequential of Linear/Conv2d/BatchNorm2d has "
                "<i>.weight/bias (and running_mean/running_var for a batch norm)"
            )
        by_index.setdefault(int(match.group(1)), {})[match.group(2)] = np.asarray(value, np.float32)
    out, norms = [], {}
    for index in sorted(by_index):
        parts = by_index[index]
        if any(part in parts for part in _RUNNING):
            key = f"{index}.{next(part for part in _RUNNING if part in parts)}"
            previous = out[-1] if out else None
            if previous is None or previous[1].ndim != 4:
                after = "before any layer" if previous is None else f"after the Linear {previous[0]}"
                raise ValueError(f"{key!r}: a batch norm {after} is not part of the mlp/cnn architectures")
            if int(previous[0]) != index - 1:
                raise ValueError(f"{key!r}: a batch norm must come right after its Conv2d ({previous[0]})")
            for part in ("running_mean", "running_var"):
                if part not in parts:
                    raise ValueError(f"batch norm {index} has no {part} ({index}.{part} is missing)")
            norms[previous[0]] = str(index)
            continue
        if "weight" not in parts:
            raise ValueError(f"layer {index} has a bias but no weight ({index}.weight is missing)")
        if parts["weight"].ndim not in (2, 4):
            raise ValueError(f"{index}.weight has rank {parts['weight'].ndim}; only Linear (2) and Conv2d (4) map")
        out.append((str(index), parts["weight"], parts.get("bias")))
    if not out:
        raise ValueError("the state_dict holds no layers")
    return out, norms


def _linear(layer, weight, bias, name: str, permute=None) -> None:
    kernel = weight.T if permute is None else permute(weight).T
    set_param(layer.kernel, np.ascontiguousarray(kernel), f"{name}.weight")
    set_param(layer.bias, np.zeros(weight.shape[0], np.float32) if bias is None else bias, f"{name}.bias")


def _nchw_to_nhwc_columns(height: int, width: int, channels: int):
    """Reorders a Linear's inputs from PyTorch's (C, H, W) flattening to Flax's (H, W, C)."""

    def permute(weight: np.ndarray) -> np.ndarray:
        if weight.shape[1] != channels * height * width:
            raise ValueError(
                f"a Linear after the flatten takes {weight.shape[1]} inputs, not {channels}x{height}x{width}"
            )
        out = weight.shape[0]
        return weight.reshape(out, channels, height, width).transpose(0, 2, 3, 1).reshape(out, -1)

    return permute


@register("torch-sequential")
def convert(tensors: dict[str, np.ndarray], input_spec: dict, stride: int = 2, padding: int = 1) -> Converted:
    """An `mlp` or `cnn` with the weights of a PyTorch nn.Sequential state_dict."""
    height, width, channels = input_spec.get("shape", (28, 28, 1))
    stack, norms = layers(tensors)
    convs = [layer for layer in stack if layer[1].ndim == 4]
    linears = [layer for layer in stack if layer[1].ndim == 2]
    if convs and stack[: len(convs)] != convs:
        raise ValueError("convolutions must all come before the Linear layers")
    num_heads = linears[-1][1].shape[0] if linears else 0
    if not convs:
        if not linears:
            raise ValueError("no Linear layer: nothing to use as heads")
        config = {"in_features": int(linears[0][1].shape[1]), "hidden": [int(w.shape[0]) for _, w, _ in linears[:-1]]}
        if config["in_features"] != height * width * channels:
            raise ValueError(
                f"{linears[0][0]}.weight takes {config['in_features']} inputs, but images of shape "
                f"{height}x{width}x{channels} have {height * width * channels}; pass the right --image-shape"
            )
        model = models.build("mlp", config, num_heads)
        permute = _nchw_to_nhwc_columns(height, width, channels) if channels > 1 else None
        for i, (layer, (name, weight, bias)) in enumerate(zip([*model.layers, model.head], linears)):
            _linear(layer, weight, bias, name, permute if i == 0 else None)
        return Converted("mlp", config, model)
    if len(linears) != 2:
        raise ValueError(f"a cnn needs exactly two Linear layers after its convs (dense, heads), got {len(linears)}")
    kernel = convs[0][1].shape[-1]
    if height != width or any(w.shape[-2:] != (kernel, kernel) for _, w, _ in convs):
        raise ValueError("the cnn architecture takes square images and square kernels of one size")
    config = {
        "in_channels": int(convs[0][1].shape[1]),
        "channels": [int(w.shape[0]) for _, w, _ in convs],
        "dense": int(linears[0][1].shape[0]),
        "image_size": int(height),
        "kernel": int(kernel),
        "stride": stride,
        "padding": padding,
    }
    if norms:
        if unnormed := [name for name, _, _ in convs if name not in norms]:
            raise ValueError(
                f"convs {unnormed} have no batch norm after them; the cnn takes one after every conv or none"
            )
        config["batch_norm"] = True  # only then: configs of cnns without batch norm stay as they were
    model = models.build("cnn", config, num_heads)
    reader = Tensors(tensors)
    for i, (conv, (name, weight, bias)) in enumerate(zip(model.convs, convs)):
        set_conv(conv, weight, bias, name)
        if norms:
            set_batch_norm(model.norms[i], reader, norms[name], affine=f"{norms[name]}.weight" in tensors)
    side = int(np.sqrt(model.dense.in_features // config["channels"][-1]))
    (dense_name, dense_w, dense_b), (head_name, head_w, head_b) = linears
    _linear(model.dense, dense_w, dense_b, dense_name, _nchw_to_nhwc_columns(side, side, config["channels"][-1]))
    _linear(model.head, head_w, head_b, head_name)
    return Converted("cnn", config, model)
