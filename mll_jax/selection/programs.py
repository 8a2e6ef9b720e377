"""Compiled CHCO programs: one per bucket shape and config, dropped before they exhaust the process.

On XLA:CPU each compiled CHCO program holds ~1000 memory maps and a process may
hold only so many (65530 by default on Linux), so `compiled_call` drops every
program once their share passes `MAP_BUDGET`; dropped programs recompile from
JAX's disk cache.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np

from mll_jax.selection import chco
from mll_jax.selection.problems import Task, with_scores

MAP_BUDGET = 0.75  # share of the process's memory-map limit compiled programs may fill before they are dropped
MAX_PROGRAMS = 48  # where that limit cannot be read: compiled programs kept per CHCO function
_signatures: dict = {}  # compiled function -> the argument signatures it holds programs for


def _maps_in_use() -> float | None:
    """Share of the process's memory-map limit in use (Linux), else None."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps) / limit
    except (OSError, ValueError):
        return None


def compiled_call(fn, *args, config: chco.Config):
    """`fn(*args, config=config)`, after dropping every CHCO function's compiled programs if a new
    one would not fit.

    On XLA:CPU each compiled CHCO program holds ~1000 memory maps and a process may
    hold only so many (65530 by default on Linux): without a bound, a long run over
    many task shapes and configs fails in the compiler. Checked only when the call
    needs a new program; dropped programs recompile from JAX's disk cache.
    """
    leaves = jax.tree.leaves(args)
    signature = (config, tuple((np.shape(x), getattr(x, "dtype", None) or np.result_type(x)) for x in leaves))
    seen = _signatures.setdefault(fn, set())
    if signature not in seen:
        used = _maps_in_use()
        if used > MAP_BUDGET if used is not None else len(seen) >= MAX_PROGRAMS:
            for compiled, signatures in _signatures.items():
                compiled.clear_cache()
                signatures.clear()
        seen.add(signature)
    return fn(*args, config=config)


def count(fn) -> int:
    """Compiled programs `compiled_call` has made for `fn` and still holds."""
    return len(_signatures.get(fn, ()))


@functools.partial(jax.jit, static_argnames=("config",))
def solve_chunk(tasks: Task, seed, config: chco.Config) -> chco.Result:
    """CHCO on a chunk of tasks (a leading task axis), each with its own random key."""

    def one(task: Task) -> chco.Result:
        key = jax.random.fold_in(jax.random.key(seed), task.name_hash)
        return chco.solve(with_scores(task), key, config)

    return jax.vmap(one)(tasks)
