"""Hugging Face `ViTForImageClassification` checkpoints (safetensors + config.json) -> the `vit` architecture.

Also what `hf_clip` and `hf_bert` share: `Weights` (every checkpoint tensor is used once; a missing,
unused or misshapen tensor is a ValueError naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from flax import nnx

from mll_jax import models, vit
from mll_jax.converters import Converted, Tensors, config_fields, register, set_conv, set_param, unfilled


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


def heads_of(config: dict, count: int) -> list[str] | None:
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
    return Converted("vit", arch_config, model, heads_of(config, num_heads))
