"""Spreading batches over devices: a 1-D 'data' mesh over every local device."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("data",))


def round_up(size: int, mesh: Mesh) -> int:
    """`size` rounded up to a multiple of the mesh's data axis, so every device gets equal rows."""
    devices = mesh.shape["data"]
    return -(-size // devices) * devices


def shard_rows(tree, mesh: Mesh):
    """Put every array of `tree` on the mesh, split along its first axis."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("data")))


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
