"""PyTorch `nn.Sequential` MLP / CNN stacks -> the `mlp` and `cnn` architectures.

The layer mapping comes from the state_dict's structure: `<i>.weight` of rank 2 is
a Linear, of rank 4 a Conv2d, in index order. Linear stacks become `mlp`; convs
followed by exactly two Linears (dense, heads) become `cnn`. What a state_dict
does not hold, the caller says: the convs' stride and padding, and the input
shape (images are NHWC here, NCHW in PyTorch, so the first Linear after a
flatten is permuted to match).
"""

from __future__ import annotations

import re

import numpy as np

from mll_jax import models
from mll_jax.converters import Converted, register, set_param

_KEY = re.compile(r"^(\d+)\.(weight|bias)$")


def layers(tensors: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, weight, bias) per layer in order; an unexpected tensor is an error naming it."""
    by_index: dict[int, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        match = _KEY.match(key)
        if not match:
            hint = " (batch norm is not part of the mlp/cnn architectures)" if "running_" in key else ""
            raise ValueError(f"unexpected tensor {key!r}{hint}; an nn.Sequential of Linear/Conv2d has <i>.weight/bias")
        by_index.setdefault(int(match.group(1)), {})[match.group(2)] = np.asarray(value, np.float32)
    out = []
    for index in sorted(by_index):
        parts = by_index[index]
        if "weight" not in parts:
            raise ValueError(f"layer {index} has a bias but no weight ({index}.weight is missing)")
        if parts["weight"].ndim not in (2, 4):
            raise ValueError(f"{index}.weight has rank {parts['weight'].ndim}; only Linear (2) and Conv2d (4) map")
        out.append((str(index), parts["weight"], parts.get("bias")))
    if not out:
        raise ValueError("the state_dict holds no layers")
    return out


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
    stack = layers(tensors)
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
    model = models.build("cnn", config, num_heads)
    for conv, (name, weight, bias) in zip(model.convs, convs):
        set_param(conv.kernel, np.ascontiguousarray(weight.transpose(2, 3, 1, 0)), f"{name}.weight")  # OIHW -> HWIO
        set_param(conv.bias, np.zeros(weight.shape[0], np.float32) if bias is None else bias, f"{name}.bias")
    side = int(np.sqrt(model.dense.in_features // config["channels"][-1]))
    (dense_name, dense_w, dense_b), (head_name, head_w, head_b) = linears
    _linear(model.dense, dense_w, dense_b, dense_name, _nchw_to_nhwc_columns(side, side, config["channels"][-1]))
    _linear(model.head, head_w, head_b, head_name)
    return Converted("cnn", config, model)
