"""Hugging Face BERT-family checkpoints (safetensors + config.json) -> `mll_jax.bert.Bert`."""

from __future__ import annotations

import numpy as np
from flax import nnx

from mll_jax.converters.tensors import Weights, check_filled, config_fields
from mll_jax.nets import bert

__all__ = ["convert"]


def convert(tensors: dict[str, np.ndarray], config: dict) -> bert.Bert:
    """A Bert with the weights of a HF `BertModel` state (a `bert.` prefix is accepted)."""
    if config.get("model_type", "bert") != "bert":
        raise ValueError(f"model_type {config.get('model_type')!r} is not a BERT-family encoder")
    tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    # abstract, then filled: random initialisation compiled every layer's initialisers (1.5 s for MiniLM)
    model = nnx.eval_shape(lambda: bert.Bert(**config_fields(config, bert.Bert), rngs=nnx.Rngs(0)))
    t = Weights(tensors)
    for embed, name in [(model.word, "word"), (model.position, "position"), (model.token_type, "token_type")]:
        t.param(embed.embedding, f"embeddings.{name}_embeddings.weight")
    t.norm(model.embedding_norm, "embeddings.LayerNorm")
    for i, layer in enumerate(model.layers):
        p = f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            t.linear(getattr(layer, part), f"{p}.attention.self.{part}")
        t.linear(layer.attention_out, f"{p}.attention.output.dense")
        t.norm(layer.attention_norm, f"{p}.attention.output.LayerNorm")
        t.linear(layer.intermediate, f"{p}.intermediate.dense")
        t.linear(layer.output, f"{p}.output.dense")
        t.norm(layer.output_norm, f"{p}.output.LayerNorm")
    t.skip(["embeddings.position_ids", *(k for k in tensors if k.startswith("pooler."))])  # not on the encoder path
    t.check_all_used("BERT")
    check_filled(model)
    return model
