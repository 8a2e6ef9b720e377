"""Compiled CHCO programs: exported once, stored on disk, loaded by every new process without tracing.

A CHCO program costs seconds to trace and lower and more to compile, and a shell
query is a new process. So each program (function, config, argument shapes, jax
version, backend, device count and this code's digest) is serialised with
`jax.export` under the cache (`programs/`); a new process deserialises it, and its
compilation comes from jax's persistent compilation cache. A stored program whose
bytes do not match their checksum, or that does not fit the call, is rebuilt and
never run.

On XLA:CPU each compiled CHCO program holds ~1000 memory maps and a process may
hold only so many (65530 by default on Linux), so `compiled_call` drops every
program once their share passes `MAP_BUDGET`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

import jax
import numpy as np
from jax import export

from mll_jax import paths
from mll_jax.configs.selection import SolverConfig
from mll_jax.selection import chco
from mll_jax.selection.problems import Samples, Task, with_scores

__all__ = ["compiled_call", "count", "forget", "solve_chunk", "store_dir"]

log = logging.getLogger(__name__)
paths.default_compile_cache()  # the compiled programs behind the stored ones come from jax's disk cache

MAP_BUDGET = 0.75  # share of the process's memory-map limit compiled programs may fill before they are dropped
MAX_PROGRAMS = 48  # where that limit cannot be read: compiled programs kept per CHCO function
MAGIC = b"mll_jax program 1\n"
_SOURCES = ("chco.py", "problems.py", "programs.py", "../configs/selection.py")  # what a stored program was traced from
_loaded: dict[str, dict[str, object]] = {}  # function name -> key -> callable, this process's programs

for _type in (Task, Samples, chco.Problem, chco.Half, chco.Result):
    export.register_namedtuple_serialization(_type, serialized_name=f"mll_jax.selection.{_type.__name__}")


def _maps_in_use() -> float | None:
    """Share of the process's memory-map limit in use (Linux), else None."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps) / limit
    except (OSError, ValueError):
        return None


@functools.cache
def _code_digest() -> str:
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in _SOURCES)).hexdigest()[:16]


def _program_key(fn, args, config: SolverConfig) -> str:
    """What a stored program depends on, hashed: a change in any of them is another program."""
    leaves, tree = jax.tree.flatten(args)
    parts = [
        fn.__name__,
        repr(config),
        str(tree),
        repr([(np.shape(x), str(_dtype(x))) for x in leaves]),
        jax.__version__,
        jax.default_backend(),
        str(jax.device_count()),
        _code_digest(),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def store_dir() -> Path:
    return paths.cache_dir() / "programs"


def _read(path: Path) -> export.Exported | None:
    """The stored program at `path`, or None if there is none or it is damaged (then it is rebuilt)."""
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


def _write(path: Path, exported: export.Exported) -> None:
    payload = bytes(exported.serialize())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(MAGIC + hashlib.sha256(payload).digest() + payload)
    os.replace(tmp, path)


def _fits(exported: export.Exported, args) -> bool:
    """Whether a stored program takes exactly these arguments (a stale one does not)."""
    return [(tuple(a.shape), np.dtype(a.dtype)) for a in exported.in_avals] == [
        (np.shape(x), _dtype(x)) for x in jax.tree.leaves(args)
    ]


def _dtype(x) -> np.dtype:
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)


def _spec(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(x), _dtype(x), sharding=getattr(x, "sharding", None))


def _program(fn, args, config: SolverConfig):
    """A callable for `fn(*args, config=config)`: this process's, the stored one, or a new one (then stored)."""
    key = _program_key(fn, args, config)
    programs = _loaded.setdefault(fn.__name__, {})
    if key in programs:
        return programs[key]
    used = _maps_in_use()
    if used > MAP_BUDGET if used is not None else len(programs) >= MAX_PROGRAMS:
        forget()
    path = store_dir() / f"{fn.__name__}-{key}.jaxprog"
    exported = _read(path)
    if exported is None or not _fits(exported, args):
        specs = jax.tree.map(_spec, args)
        exported = export.export(jax.jit(functools.partial(fn, config=config)))(*specs)
        try:
            _write(path, exported)
        except OSError as error:  # a read-only cache still selects, it only traces again next time
            log.warning("cannot store program %s (%s)", path, error)
    programs[key] = jax.jit(exported.call)
    return programs[key]


def compiled_call(fn, *args, config: SolverConfig):
    """`fn(*args, config=config)` through its stored program (see the module docstring)."""
    args = tuple(np.int32(a) if isinstance(a, int) else a for a in args)
    return _program(fn, args, config)(*args)


def count(fn) -> int:
    """Programs `compiled_call` holds in this process for `fn`."""
    return len(_loaded.get(fn.__name__, ()))


def forget() -> None:
    """Drop this process's programs: the next call of each reads it from the store again."""
    for held in _loaded.values():
        held.clear()


def solve_chunk(tasks: Task, seed, config: SolverConfig) -> chco.Result:
    """CHCO on a chunk of tasks (a leading task axis), each with its own random key."""

    def one(task: Task) -> chco.Result:
        key = jax.random.fold_in(jax.random.key(seed), task.name_hash)
        return chco.solve(with_scores(task), key, config)

    return jax.vmap(one)(tasks)
