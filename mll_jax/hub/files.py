"""The hub's files: checksums that vouch for them, and the lock writers take."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from mll_jax import paths

__all__ = ["checksum", "locked"]


def checksum(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the hub's write lock (`.lock` in its directory) while the block runs."""
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"no write permission on hub {directory}")
    with paths.exclusive(directory):
        yield
