"""Hugging Face `CLIPModel` checkpoints (safetensors + config.json + tokenizer.json) -> `mll_jax.clip.Clip`.

Not a registered converter: the registry's `Converted` is a classifier (images -> named
head logits), and a CLIP scores images against any texts instead. Use `load` (or
`convert` on tensors already read) and the model's `image_embeddings` / `text_embeddings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flax import nnx

from mll_jax.converters.files import read_checkpoint
from mll_jax.converters.tensors import Weights, check_filled, config_fields
from mll_jax.nets import clip

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["BLOCK_NAMES", "FILES", "convert", "download", "load", "local_directory", "tokenize", "tower_config"]

BLOCK_NAMES = {
    "query": "self_attn.q_proj",
    "key": "self_attn.k_proj",
    "value": "self_attn.v_proj",
    "attention_out": "self_attn.out_proj",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
    "norm1": "layer_norm1",
    "norm2": "layer_norm2",
}
FILES = ("config.json", "model.safetensors", "tokenizer.json")  # all `load` reads, so all it downloads


def tower_config(config: dict, tower: str, cls: type) -> dict:
    # Old configs carry `<tower>_config_dict`; transformers then builds the tower from it alone (HF defaults fill in).
    sub = config.get(f"{tower}_config_dict") or config.get(f"{tower}_config") or {}
    return config_fields(sub, cls)


def convert(tensors: dict[str, np.ndarray], config: dict) -> clip.Clip:
    """A Clip with the weights of a Hugging Face `CLIPModel` state (its saved layout) and its config.json."""
    if config.get("model_type") != "clip":
        raise ValueError(f"model_type {config.get('model_type')!r} is not 'clip' (a CLIPModel)")
    vision_config = tower_config(config, "vision", clip.VisionTower)
    text_config = tower_config(config, "text", clip.TextTower)
    projection_dim = config.get("projection_dim", 512)
    # Abstract: no random init, since every value is overwritten below.
    model = nnx.eval_shape(lambda: clip.Clip(vision_config, text_config, projection_dim, rngs=nnx.Rngs(0)))
    t = Weights(tensors)
    vision, text = model.vision, model.text
    t.param(vision.embeddings.cls, "vision_model.embeddings.class_embedding")
    t.conv(vision.embeddings.conv, "vision_model.embeddings.patch_embedding")
    t.param(vision.embeddings.positions, "vision_model.embeddings.position_embedding.weight")
    t.norm(vision.pre_norm, "vision_model.pre_layrnorm")  # sic: Hugging Face's spelling
    for i, block in enumerate(vision.layers):
        t.block(block, f"vision_model.encoder.layers.{i}", BLOCK_NAMES)
    t.norm(vision.post_norm, "vision_model.post_layernorm")
    t.param(text.token.embedding, "text_model.embeddings.token_embedding.weight")
    t.param(text.position.embedding, "text_model.embeddings.position_embedding.weight")
    for i, block in enumerate(text.layers):
        t.block(block, f"text_model.encoder.layers.{i}", BLOCK_NAMES)
    t.norm(text.final_norm, "text_model.final_layer_norm")
    t.linear(model.visual_projection, "visual_projection")
    t.linear(model.text_projection, "text_projection")
    t.param(model.logit_scale, "logit_scale")
    # Older checkpoints also store the position-id buffers (0, 1, 2, ...): no weights, so nothing to take.
    t.skip(f"{tower}.embeddings.position_ids" for tower in ("text_model", "vision_model"))
    t.check_all_used("CLIPModel")
    check_filled(model)
    return model


def _looks_local(name: str) -> bool:
    """A path the user meant as a local directory, rather than a Hub repo name ("name" or "owner/name")."""
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def download(name: str) -> Path:
    """The local snapshot of Hugging Face Hub repo `name` (only the files `load` reads); the one network use."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(
            f"{name!r} is not a local directory, and downloading it from the Hugging Face Hub needs "
            "huggingface_hub (pip install huggingface_hub); or pass a directory with " + ", ".join(FILES)
        ) from None
    return Path(snapshot_download(name, allow_patterns=list(FILES)))


def local_directory(path: str | Path) -> Path:
    """The directory of a Hugging Face CLIP: `path` itself, or a Hub repo name downloaded."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        if directory.exists() or _looks_local(str(path)):
            raise FileNotFoundError(f"{path} is not a directory (a Hugging Face CLIP model: {', '.join(FILES)})")
        directory = download(str(path))
    return directory


def load(path: str | Path) -> tuple[clip.Clip, Tokenizer]:
    """(Clip, tokenizer) from a Hugging Face CLIP directory, or a Hub repo name (downloaded) if no such directory.

    The tokenizer is a `tokenizers.Tokenizer`, truncating to the text tower's positions; see `tokenize`.
    """
    from tokenizers import Tokenizer

    directory = local_directory(path)
    tensors, config = read_checkpoint(directory)
    model = convert(tensors, config)
    if not (directory / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{directory} has no tokenizer.json (the `tokenizers` library's format)")
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(model.text.max_positions)  # keeps the end-of-text token the tower pools at
    tokenizer.no_padding()  # `tokenize` pads each batch to its longest text
    return model, tokenizer


def tokenize(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask) [len(texts), longest] int32 for `Clip.text_embeddings`; padding is id 0 with mask 0.

    Id 0 never moves the pooled token: the end-of-text token comes first, and 0 is no larger than any id.
    """
    encodings = tokenizer.encode_batch(texts)
    length = max((len(e.ids) for e in encodings), default=0)
    ids = np.zeros((len(encodings), length), np.int32)
    mask = np.zeros((len(encodings), length), np.int32)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, e.attention_mask
    return ids, mask
