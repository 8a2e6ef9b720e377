"""Compiled CHCO programs: exported once, stored on disk, loaded by every new process without tracing.

A CHCO program costs seconds to trace and lower and more to compile, and a shell
query is a new process. So each program (function, config, argument shapes, jax
version, backend, device count and this code's digest) is stored under the cache
(`programs/`) through `mll_jax.exported`: a new process loads it without tracing.

On XLA:CPU each compiled CHCO program holds ~1000 memory maps and a process may
hold only so many, so this process's programs are dropped with every other
compiled program when the process's budget is spent (`mll_jax.memory_maps`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import logging
from pathlib import Path

import jax
import numpy as np
from jax import export

from mll_jax import exported, memory_maps, paths
from mll_jax.configs.selection import SolverConfig
from mll_jax.selection import chco
from mll_jax.selection.problems import Samples, Task, with_scores

__all__ = ["compiled_call", "count", "forget", "pending", "prefetch", "solve_chunk", "store_dir"]

log = logging.getLogger(__name__)
paths.default_compile_cache()  # the compiled programs behind the stored ones come from jax's disk cache

MAX_PROGRAMS = 48  # where memory maps cannot be counted: compiled programs kept per CHCO function
_SOURCES = ("chco.py", "problems.py", "programs.py", "../configs/selection.py")  # what a stored program was traced from
_loaded: dict[str, dict[str, object]] = {}  # function name -> key -> callable, this process's programs
_pending: dict[str, concurrent.futures.Future] = {}  # key -> a program `prefetch` is loading
_background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mll_jax-programs")

for _type in (Task, Samples, chco.Problem, chco.Half, chco.Result):
    export.register_namedtuple_serialization(_type, serialized_name=f"mll_jax.selection.{_type.__name__}")


@functools.cache
def _code_digest() -> str:
    here = Path(__file__).parent
    return exported.source_digest([here / name for name in _SOURCES])


def _program_key(fn, args, config: SolverConfig) -> str:
    """What a stored program depends on, hashed: a change in any of them is another program."""
    leaves, tree = jax.tree.flatten(args)
    parts = [
        fn.__name__,
        repr(config),
        str(tree),
        repr([(x.shape, str(x.dtype)) for x in map(exported.spec, leaves)]),
        jax.__version__,
        jax.default_backend(),
        str(jax.device_count()),
        _code_digest(),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def store_dir() -> Path:
    return paths.cache_dir() / "programs"


def _program(fn, args, config: SolverConfig):
    """A callable for `fn(*args, config=config)`: this process's, one `prefetch` is loading, the stored one, or a
    new one (then stored)."""
    key = _program_key(fn, args, config)
    programs = _loaded.setdefault(fn.__name__, {})
    if key in programs:
        return programs[key]
    memory_maps.check()
    if len(programs) >= MAX_PROGRAMS and not memory_maps.countable():
        forget()
    pending = _pending.pop(key, None)
    programs[key] = pending.result() if pending is not None else _load(fn, args, config, key)
    return programs[key]


def _load(fn, args, config: SolverConfig, key: str):
    path = store_dir() / f"{fn.__name__}-{key}.jaxprog"
    program, _ = exported.load_or_export(path, functools.partial(fn, config=config), args)
    return exported.compiled(program, args)


def _arguments(args) -> tuple:
    return tuple(np.int32(a) if isinstance(a, int) else a for a in args)


def compiled_call(fn, *args, config: SolverConfig):
    """`fn(*args, config=config)` through its stored program (see the module docstring)."""
    args = _arguments(args)
    return _program(fn, args, config)(*args)


def _load_and_run(fn, args, config: SolverConfig, key: str):
    """`_load`, then one run on `args`: an executable read back from the cache links its kernels at its first
    run (65 ms of a 3-class CHCO program on CPU, against 6 ms for the next run), which this moves off the caller."""
    program = _load(fn, args, config, key)
    jax.block_until_ready(program(*args))
    return program


def prefetch(fn, *args, config: SolverConfig) -> None:
    """Start loading the program of `fn(*args, config=config)` on a background thread, and run it once on `args`
    (placeholders of the call's shapes), unless this process has it; `compiled_call` then waits for it instead of
    loading it again. A new process's first query does this while its names are matched (reading a compiled
    program back and loading the text encoder each take 0.2-0.3 s on CPU, and run side by side:
    benchmarks/first_queries.py)."""
    args = _arguments(args)
    key = _program_key(fn, args, config)
    if key not in _loaded.get(fn.__name__, {}) and key not in _pending:
        _pending[key] = _background.submit(_load_and_run, fn, args, config, key)


def count(fn) -> int:
    """Programs `compiled_call` holds in this process for `fn`."""
    return len(_loaded.get(fn.__name__, ()))


def pending() -> int:
    """Programs `prefetch` started that no call has taken yet."""
    return len(_pending)


def forget() -> None:
    """Drop this process's programs (and those `prefetch` is loading): the next call of each reads it from the
    store again."""
    _pending.clear()
    for held in _loaded.values():
        held.clear()


memory_maps.register(forget)


def solve_chunk(tasks: Task, seed, config: SolverConfig) -> chco.Result:
    """CHCO on a chunk of tasks (a leading task axis), each with its own random key."""

    def one(task: Task) -> chco.Result:
        key = jax.random.fold_in(jax.random.key(seed), task.name_hash)
        return chco.solve(with_scores(task), key, config)

    return jax.vmap(one)(tasks)
