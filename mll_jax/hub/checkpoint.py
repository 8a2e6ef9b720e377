"""Model parameters on disk: one orbax checkpoint per model, plus a checksum."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

__all__ = ["checksum", "flat_params", "from_bytes", "load_safetensors", "restore", "save", "to_bytes"]


def checksum(tree) -> str:
    """sha256 over every leaf's path, dtype, shape and bytes (order-independent of dict order)."""
    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(tree), key=lambda pl: jax.tree_util.keystr(pl[0])):
        leaf = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype}|{leaf.shape}|".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def _checkpointer():
    import orbax.checkpoint as ocp  # half a second to import: only where a checkpoint is read or written

    # Each hub file belongs to one process: under jax.distributed, processes read and
    # write different models, so orbax must not wait for the others at a barrier.
    this = jax.process_index()
    return ocp.StandardCheckpointer(
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=this, active_processes={this})
    )


def save(directory: Path, model: nnx.Module) -> str:
    """Write `model`'s state to `directory` atomically; returns its checksum."""
    pure = nnx.to_pure_dict(nnx.state(model))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        with _checkpointer() as checkpointer:
            checkpointer.save(staging / "state", pure)
        if directory.exists():
            shutil.rmtree(directory)
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return checksum(pure)


def restore(directory: Path, abstract_model: nnx.Module, expected_checksum: str | None = None) -> nnx.Module:
    """Load parameters into `abstract_model` (from `models.abstract`), checking the checksum."""
    if not (directory / "state").is_dir():
        raise FileNotFoundError(f"no checkpoint at {directory}")
    graphdef, abstract_state = nnx.split(abstract_model)
    target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), nnx.to_pure_dict(abstract_state))
    try:
        with _checkpointer() as checkpointer:
            pure = checkpointer.restore(directory / "state", target)
    except Exception as error:
        raise ValueError(f"checkpoint {directory} is unreadable ({type(error).__name__}: {error})") from error
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(pure), jax.tree.leaves(target)):
        if np.shape(got) != want.shape:
            raise ValueError(
                f"checkpoint {directory}: parameter {_flat_name(path)} has shape {np.shape(got)}, "
                f"the hub entry's architecture expects {want.shape}"
            )
    if expected_checksum is not None and checksum(pure) != expected_checksum:
        raise ValueError(f"checkpoint {directory} does not match its recorded checksum; the file is corrupt")
    nnx.replace_by_pure_dict(abstract_state, pure)
    return nnx.merge(graphdef, abstract_state)


def _flat_name(path) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def flat_params(model: nnx.Module) -> dict[str, np.ndarray]:
    """The model's state as flat names ('layers.0.kernel') -> arrays, the safetensors layout."""
    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model)))[0]
    return {_flat_name(path): np.asarray(v) for path, v in flat}


def load_safetensors(path: Path, abstract_model: nnx.Module) -> nnx.Module:
    """Parameters from a safetensors file (flat names as in `flat_params`) into `abstract_model`.

    Reads only tensors (never code); names or shapes that do not fit are errors naming the tensor.
    """
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as error:  # the library raises several types for a bad file
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None
    return _from_flat(tensors, abstract_model, str(path))


def to_bytes(model: nnx.Module) -> tuple[bytes, str]:
    """A small model's parameters as one .npz blob (flat names, as in `flat_params`), and their checksum.

    Heads over a shared backbone are a few KB: the hub's database stores them as rows,
    where an orbax directory per head would cost more to write than to train.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **flat_params(model))
    return buffer.getvalue(), checksum(nnx.to_pure_dict(nnx.state(model)))


def from_bytes(data: bytes, abstract_model: nnx.Module, source: str, expected_checksum: str | None = None):
    """Parameters from a `to_bytes` blob into `abstract_model`, checking the checksum."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as blob:
            tensors = dict(blob)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"parameters of {source} are unreadable ({error})") from None
    model = _from_flat(tensors, abstract_model, source)
    if expected_checksum is not None and checksum(nnx.to_pure_dict(nnx.state(model))) != expected_checksum:
        raise ValueError(f"parameters of {source} do not match their recorded checksum; they are corrupt")
    return model


def _from_flat(tensors: dict[str, np.ndarray], abstract_model: nnx.Module, source: str) -> nnx.Module:
    """`abstract_model` with parameters from flat names -> arrays; names or shapes that do not fit are errors."""
    graphdef, abstract_state = nnx.split(abstract_model)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(abstract_state))
    expected = {_flat_name(p): leaf for p, leaf in leaves}
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing:
        raise ValueError(f"{source}: missing tensor {', '.join(missing)} for this architecture")
    if extra:
        raise ValueError(f"{source}: unexpected tensor {', '.join(extra)}; this architecture has no such parameter")
    for name, leaf in expected.items():
        if tensors[name].shape != tuple(leaf.shape):
            raise ValueError(f"{source}: tensor {name} has shape {tensors[name].shape}, the model expects {leaf.shape}")
    pure = jax.tree_util.tree_unflatten(treedef, [tensors[n].astype(leaf.dtype) for n, leaf in expected.items()])
    nnx.replace_by_pure_dict(abstract_state, pure)
    return nnx.merge(graphdef, abstract_state)
