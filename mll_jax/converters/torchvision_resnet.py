"""torchvision ResNet state_dicts (resnet18/34/50/101/152 and their variants) -> the `resnet` architecture.

The layout comes from the tensors: basic or bottleneck blocks (`conv3` present),
blocks per stage (`layer<s>.<b>.`), widths (each stage's first `conv1`), input
channels (`conv1.weight`) and heads (`fc.weight`). Wide ResNets and ResNeXt
(grouped or widened bottlenecks) are not this architecture and are refused.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mll_jax.converters.registry import register
from mll_jax.converters.tensors import Converted, Tensors, set_batch_norm, set_conv, set_param, unfilled
from mll_jax.nets import registry as models
from mll_jax.nets.resnet import EXPANSION, ConvBN, ResNet

__all__ = ["convert", "layout", "load"]


def _stage_depths(tensors: dict[str, np.ndarray]) -> list[int]:
    depths, stage = [], 1
    while f"layer{stage}.0.conv1.weight" in tensors:
        depth = 0
        while f"layer{stage}.{depth}.conv1.weight" in tensors:
            depth += 1
        depths.append(depth)
        stage += 1
    if not depths:
        raise ValueError("no layer1.0.conv1.weight: not a torchvision ResNet state_dict")
    return depths


def layout(tensors: dict[str, np.ndarray]) -> dict:
    """The `resnet` config of a torchvision ResNet state_dict."""
    for key in ("conv1.weight", "fc.weight"):
        if key not in tensors:
            raise ValueError(f"the checkpoint has no tensor {key!r}; is it a torchvision ResNet state_dict?")
    stem = tensors["conv1.weight"]
    if stem.ndim != 4 or stem.shape[-2:] != (7, 7):
        raise ValueError(f"conv1.weight has shape {stem.shape}; the torchvision stem is a 7x7 convolution")
    depths = _stage_depths(tensors)
    block = "bottleneck" if "layer1.0.conv3.weight" in tensors else "basic"
    widths = [int(tensors[f"layer{s + 1}.0.conv1.weight"].shape[0]) for s in range(len(depths))]
    if block == "bottleneck":
        for s, width in enumerate(widths):
            out = tensors[f"layer{s + 1}.0.conv3.weight"].shape[0]
            if out != EXPANSION["bottleneck"] * width:
                raise ValueError(
                    f"layer{s + 1}.0.conv3.weight has {out} outputs, not 4x the block's width {width}: "
                    "wide ResNets and ResNeXt are not supported"
                )
    return {
        "block": block,
        "depths": depths,
        "widths": widths,
        "stem_width": int(stem.shape[0]),
        "in_channels": int(stem.shape[1]),
    }


def _set_conv_bn(layer: ConvBN, tensors: Tensors, conv: str, norm: str) -> None:
    set_conv(layer.conv, tensors.take(f"{conv}.weight"), None, conv)
    set_batch_norm(layer.norm, tensors, norm)


def load(
    config: dict,
    num_heads: int,
    tensors: dict[str, np.ndarray],
    layout_name: str,
    stem: tuple[str, str],
    layer: Callable[[int, int, int], tuple[str, str]],
    shortcut: Callable[[int, int], tuple[str, str]],
    head: str,
) -> ResNet:
    """A `resnet` of `config` filled from a checkpoint whose (conv, norm) tensor prefixes are `stem`,
    `layer(stage, block, i)` and `shortcut(stage, block)` (counted from 0), and whose classifier is `head`;
    every tensor must be used. Shared by the torchvision and Hugging Face layouts, which differ only in names."""
    model = models.abstract("resnet", config, num_heads)
    reader = Tensors(tensors)
    _set_conv_bn(model.stem, reader, *stem)
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            for i, conv_bn in enumerate(block.layers):
                _set_conv_bn(conv_bn, reader, *layer(s, b, i))
            if block.shortcut is not None:
                _set_conv_bn(block.shortcut, reader, *shortcut(s, b))
    set_param(model.head.kernel, reader.take(f"{head}.weight").T, f"{head}.weight")
    set_param(model.head.bias, reader.take(f"{head}.bias"), f"{head}.bias")
    reader.check_all_used(layout_name)
    if gaps := unfilled(model):  # every variable was given a tensor above: a gap is a bug in this function
        raise RuntimeError(f"the converter left {gaps[:5]} without values")
    return model


@register("torchvision-resnet")
def convert(tensors: dict[str, np.ndarray], input_spec: dict) -> Converted:
    """A `resnet` with the weights of a torchvision ResNet state_dict (`num_batches_tracked` is dropped)."""
    config = layout(tensors)
    channels = input_spec.get("shape", (None, None, config["in_channels"]))[-1]
    if channels != config["in_channels"]:
        raise ValueError(f"conv1.weight takes {config['in_channels']} input channels, the input spec has {channels}")
    model = load(
        config,
        int(tensors["fc.weight"].shape[0]),
        tensors,
        "torchvision ResNet",
        stem=("conv1", "bn1"),
        layer=lambda s, b, i: (f"layer{s + 1}.{b}.conv{i + 1}", f"layer{s + 1}.{b}.bn{i + 1}"),
        shortcut=lambda s, b: (f"layer{s + 1}.{b}.downsample.0", f"layer{s + 1}.{b}.downsample.1"),
        head="fc",
    )
    return Converted("resnet", config, model)
