"""Hugging Face BERT-family checkpoints (safetensors + config.json) -> `mll_jax.bert.Bert`."""

from __future__ import annotations

import numpy as np
from flax import nnx

from mll_jax import bert
from mll_jax.converters import set_param

CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
)


def convert(tensors: dict[str, np.ndarray], config: dict) -> bert.Bert:
    """A Bert with the weights of a HF `BertModel` state (a `bert.` prefix is accepted)."""
    if config.get("model_type", "bert") != "bert":
        raise ValueError(f"model_type {config.get('model_type')!r} is not a BERT-family encoder")
    tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    model = bert.Bert(**{k: config[k] for k in CONFIG_KEYS if k in config}, rngs=nnx.Rngs(0))
    used = set()

    def take(name: str) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"the checkpoint has no tensor {name!r}")
        used.add(name)
        return np.asarray(tensors[name], np.float32)

    def linear(layer: nnx.Linear, name: str) -> None:
        set_param(layer.kernel, take(f"{name}.weight").T, f"{name}.weight")
        set_param(layer.bias, take(f"{name}.bias"), f"{name}.bias")

    def norm(layer: nnx.LayerNorm, name: str) -> None:
        set_param(layer.scale, take(f"{name}.weight"), f"{name}.weight")
        set_param(layer.bias, take(f"{name}.bias"), f"{name}.bias")

    for embed, name in [(model.word, "word"), (model.position, "position"), (model.token_type, "token_type")]:
        key = f"embeddings.{name}_embeddings.weight"
        set_param(embed.embedding, take(key), key)
    norm(model.embedding_norm, "embeddings.LayerNorm")
    for i, layer in enumerate(model.layers):
        p = f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            linear(getattr(layer, part), f"{p}.attention.self.{part}")
        linear(layer.attention_out, f"{p}.attention.output.dense")
        norm(layer.attention_norm, f"{p}.attention.output.LayerNorm")
        linear(layer.intermediate, f"{p}.intermediate.dense")
        linear(layer.output, f"{p}.output.dense")
        norm(layer.output_norm, f"{p}.output.LayerNorm")
    ignored = {"embeddings.position_ids"} | {k for k in tensors if k.startswith("pooler.")}
    unused = sorted(set(tensors) - used - ignored)
    if unused:
        raise ValueError(f"tensors the BERT layout does not use: {unused[:5]}{' ...' if len(unused) > 5 else ''}")
    return model
