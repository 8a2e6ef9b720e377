"""Programs exported once with `jax.export`, kept as checksummed files, loaded by later processes without tracing.

A new process (a shell query, a worker) would otherwise trace and lower every
program before its first call; a stored one is deserialised in milliseconds, and its
compilation comes from jax's persistent compilation cache. A file whose bytes do not
match their checksum, or whose program does not take the call's arguments, is never
run: the caller's function is traced again and the file rewritten. Users: the CHCO
programs (`selection.programs`) and the text encoder (`concepts.text`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from jax import export

__all__ = ["compiled", "fits", "load_or_export", "read", "source_digest", "spec", "traced", "write"]

log = logging.getLogger(__name__)
MAGIC = b"mll_jax program 1\n"
_traced: list[str] = []  # the files of the programs this process traced rather than loaded


def source_digest(files: list[Path]) -> str:
    """A digest of the source files a program is traced from: an edit to any of them is another program."""
    return hashlib.sha256(b"".join(Path(f).read_bytes() for f in files)).hexdigest()[:16]


def read(path: Path) -> export.Exported | None:
    """The program stored at `path`, or None if there is none or it is damaged (then it is rebuilt)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    head, digest, payload = data[: len(MAGIC)], data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if head != MAGIC or hashlib.sha256(payload).digest() != digest:
        log.warning("stored program %s is damaged; rebuilding it", path.name)
        return None
    try:
        return export.deserialize(bytearray(payload))
    except Exception as error:  # any failure to read it back means: rebuild, never trust
        log.warning("stored program %s does not deserialise (%s); rebuilding it", path.name, error)
        return None


def write(path: Path, exported: export.Exported) -> None:
    """Store `exported` at `path` atomically (a reader sees the old file or the whole new one)."""
    payload = bytes(exported.serialize())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(MAGIC + hashlib.sha256(payload).digest() + payload)
    os.replace(tmp, path)


def _dtype(x) -> np.dtype:
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)


def spec(x) -> jax.ShapeDtypeStruct:
    """The abstract value of an argument (its sharding kept)."""
    return jax.ShapeDtypeStruct(np.shape(x), _dtype(x), sharding=getattr(x, "sharding", None))


def fits(exported: export.Exported, args) -> bool:
    """Whether a stored program takes exactly these arguments (a stale one does not)."""
    return [(tuple(a.shape), np.dtype(a.dtype)) for a in exported.in_avals] == [
        (np.shape(x), _dtype(x)) for x in jax.tree.leaves(args)
    ]


def load_or_export(path: Path, fn: Callable, args: tuple) -> tuple[export.Exported, bool]:
    """The program of `fn(*args)` stored at `path`, or `fn` traced and exported now (and stored);
    with whether it was traced."""
    exported = read(path)
    if exported is not None and fits(exported, args):
        return exported, False
    exported = export.export(jax.jit(fn))(*jax.tree.map(spec, args))
    _traced.append(path.name)
    try:
        write(path, exported)
    except OSError as error:  # a read-only cache still works, it only traces again next time
        log.warning("cannot store program %s (%s)", path, error)
    return exported, True


def compiled(program: export.Exported, args: tuple) -> Callable:
    """`program` compiled for exactly these arguments' shapes, dtypes and shardings (ahead of time: a `jax.jit`
    of `program.call` would lower it again at its first call, 85 ms of a new process's first CHCO solve)."""
    return jax.jit(program.call).lower(*args).compile()


def traced() -> int:
    """How many programs this process traced and exported, rather than loaded from their files."""
    return len(_traced)
