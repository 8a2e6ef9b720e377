"""Hugging Face `ResNetForImageClassification` (safetensors + config.json) -> the `resnet` architecture.

HF's ResNet is torchvision's (same stem, blocks, shortcuts and paddings) under other
names; its `hidden_sizes` are the stages' output channels, so a bottleneck stage's
width here is `hidden_sizes[s] // 4`. Both of its `downsample_in_*` options map.
"""

from __future__ import annotations

import numpy as np

from mll_jax.converters import torchvision_resnet
from mll_jax.converters.registry import register
from mll_jax.converters.tensors import Converted
from mll_jax.nets.resnet import EXPANSION

__all__ = ["convert", "heads", "layout"]

_DEFAULTS = {  # transformers' ResNetConfig defaults, for config.json files that leave a key out
    "num_channels": 3,
    "embedding_size": 64,
    "hidden_sizes": [256, 512, 1024, 2048],
    "depths": [3, 4, 6, 3],
    "layer_type": "bottleneck",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
    "downsample_in_bottleneck": False,
}


def layout(config: dict) -> dict:
    """The `resnet` config of a HF ResNetConfig (as config.json holds it)."""
    if config.get("model_type", "resnet") != "resnet":
        raise ValueError(f"model_type {config.get('model_type')!r} is not a Hugging Face ResNet")
    hf = {**_DEFAULTS, **{k: config[k] for k in _DEFAULTS if k in config}}
    if hf["hidden_act"] != "relu":
        raise ValueError(f"hidden_act {hf['hidden_act']!r} is not supported; the resnet architecture uses relu")
    block = hf["layer_type"]
    if block not in EXPANSION:
        raise ValueError(f"layer_type {block!r} is not one of {sorted(EXPANSION)}")
    if len(hf["depths"]) != len(hf["hidden_sizes"]):
        raise ValueError(f"depths {hf['depths']} and hidden_sizes {hf['hidden_sizes']} differ in length")
    expansion = EXPANSION[block]
    if any(size % expansion for size in hf["hidden_sizes"]):
        raise ValueError(f"bottleneck hidden_sizes {hf['hidden_sizes']} must be multiples of {expansion}")
    return {
        "block": block,
        "depths": [int(d) for d in hf["depths"]],
        "widths": [int(size) // expansion for size in hf["hidden_sizes"]],
        "stem_width": int(hf["embedding_size"]),
        "in_channels": int(hf["num_channels"]),
        "downsample_in_first_stage": bool(hf["downsample_in_first_stage"]),
        "downsample_in_bottleneck": bool(hf["downsample_in_bottleneck"]),
    }


def heads(config: dict, num_heads: int) -> list[str] | None:
    """Class names in output order from `id2label` (None without one)."""
    id2label = config.get("id2label")
    if not id2label:
        return None
    labels = {int(k): v for k, v in id2label.items()}  # JSON object keys are strings
    if sorted(labels) != list(range(num_heads)):
        raise ValueError(f"id2label names outputs {sorted(labels)}, but classifier.1.weight has {num_heads} outputs")
    return [labels[i] for i in range(num_heads)]


@register("hf-resnet")
def convert(tensors: dict[str, np.ndarray], input_spec: dict, config: dict | None = None) -> Converted:
    """A `resnet` with the weights of a HF ResNetForImageClassification; heads from its id2label."""
    if config is None:
        raise ValueError("hf-resnet needs the model's config.json: pass the Hugging Face model directory")
    arch_config = layout(config)
    channels = input_spec.get("shape", (None, None, arch_config["in_channels"]))[-1]
    if channels != arch_config["in_channels"]:
        raise ValueError(f"the model takes {arch_config['in_channels']} input channels, the input spec has {channels}")
    if "classifier.1.weight" not in tensors:
        raise ValueError("the checkpoint has no tensor 'classifier.1.weight': a ResNetModel without a classifier")
    num_heads = int(tensors["classifier.1.weight"].shape[0])

    def conv_bn(prefix: str) -> tuple[str, str]:
        return f"{prefix}.convolution", f"{prefix}.normalization"

    model = torchvision_resnet.load(
        arch_config,
        num_heads,
        tensors,
        "Hugging Face ResNet",
        stem=conv_bn("resnet.embedder.embedder"),
        layer=lambda s, b, i: conv_bn(f"resnet.encoder.stages.{s}.layers.{b}.layer.{i}"),
        shortcut=lambda s, b: conv_bn(f"resnet.encoder.stages.{s}.layers.{b}.shortcut"),
        head="classifier.1",
    )
    return Converted("resnet", arch_config, model, heads(config, num_heads))
