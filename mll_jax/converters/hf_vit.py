"""Hugging Face `ViTForImageClassification` checkpoints (safetensors + config.json) -> the `vit` architecture.

Also what `hf_clip` and `hf_bert` share: `Weights` (every checkpoint tensor is used once; a missing,
unused or misshapen tensor is a ValueError naming it).
"""

from __future__ import annotations

import numpy as np

from mll_jax.converters.registry import register
from mll_jax.converters.tensors import Converted, Weights, check_filled, config_fields
from mll_jax.nets import registry as models
from mll_jax.nets import vit

__all__ = ["BLOCK_NAMES", "convert"]

BLOCK_NAMES = {
    "query": "attention.attention.query",
    "key": "attention.attention.key",
    "value": "attention.attention.value",
    "attention_out": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
}


def _heads_of(config: dict, count: int) -> list[str] | None:
    """The class names of `id2label` in id order, or None when they do not name all `count` outputs."""
    id2label = config.get("id2label") or {}
    labels = {int(k): str(v) for k, v in id2label.items()}
    if sorted(labels) != list(range(count)):
        return None
    return [labels[i] for i in range(count)]


@register("hf-vit")
def convert(tensors: dict[str, np.ndarray], input_spec: dict, config: dict | None = None) -> Converted:
    """A `vit` with the weights of a Hugging Face ViTForImageClassification (its saved, Hub layout)."""
    if config is None:
        raise ValueError("hf-vit converts a Hugging Face model directory (config.json + model.safetensors)")
    if config.get("model_type") != "vit":
        raise ValueError(f"model_type {config.get('model_type')!r} is not 'vit' (a ViTForImageClassification)")
    arch_config = config_fields(config, vit.ViT)
    if "classifier.weight" not in tensors:
        raise ValueError("the checkpoint has no tensor 'classifier.weight': is it a ViTForImageClassification?")
    num_heads = int(tensors["classifier.weight"].shape[0])
    model = models.abstract("vit", arch_config, num_heads)  # no random init: every value is overwritten
    side, channels = model.embeddings.image_size, model.embeddings.conv.in_features
    if "shape" in input_spec and list(input_spec["shape"]) != [side, side, channels]:
        raise ValueError(
            f"input_spec shape {list(input_spec['shape'])} is not the model's [{side}, {side}, {channels}]"
        )

    t = Weights(tensors)
    t.param(model.embeddings.cls, "vit.embeddings.cls_token", lambda x: x.reshape(x.shape[-1:]))
    t.param(model.embeddings.positions, "vit.embeddings.position_embeddings", lambda x: x.reshape(x.shape[-2:]))
    t.conv(model.embeddings.conv, "vit.embeddings.patch_embeddings.projection")
    for i, block in enumerate(model.layers):
        t.block(block, f"vit.encoder.layer.{i}", BLOCK_NAMES)
    t.norm(model.norm, "vit.layernorm")
    t.linear(model.head, "classifier")
    # ViTModel's pooler is not on the classification path (ViTForImageClassification reads the CLS state).
    t.skip(k for k in tensors if k.startswith("vit.pooler."))
    t.check_all_used("ViTForImageClassification")
    check_filled(model)
    return Converted("vit", arch_config, model, _heads_of(config, num_heads))
