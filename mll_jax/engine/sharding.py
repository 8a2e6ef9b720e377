"""Spreading work over devices: a ('data', 'model') mesh over this process's devices."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["mesh", "replicate", "round_up", "shard_rows"]


def mesh(model: int = 1) -> Mesh:
    """Every local device, `model` of them along the model axis and the rest along the data axis."""
    devices = jax.local_devices()
    if model < 1 or len(devices) % model:
        raise ValueError(f"the model axis ({model}) must divide the number of devices ({len(devices)})")
    return Mesh(np.array(devices).reshape(len(devices) // model, model), ("data", "model"))


def round_up(size: int, mesh: Mesh, axis: str = "data") -> int:
    """`size` rounded up to a multiple of the mesh axis, so every device gets equal rows."""
    devices = mesh.shape[axis]
    return -(-size // devices) * devices


def shard_rows(tree, mesh: Mesh):
    """Put every array of `tree` on the mesh, split along its first axis over the data axis."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("data")))


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
