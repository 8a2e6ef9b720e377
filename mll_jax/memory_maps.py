"""One memory-map budget for every compiled program in a process.

On XLA:CPU each compiled program keeps hundreds of memory maps of machine code (a
CHCO program about 1,000), and Linux allows a process `vm.max_map_count` of them
(65,530 by default); past it LLVM cannot allocate and the process dies. Programs
pile up in several stages (the engine's families, training epochs, CHCO programs),
so the budget is the process's, not a stage's: a stage that holds compiled programs
outside jax's own caches registers how to drop them, and calls `check()` where it is
about to make a new one. Over budget, `check` drops them all, jax's caches included;
each is compiled again (from jax's disk cache) the next time it is called.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path

import jax

__all__ = ["BUDGET", "check", "countable", "register", "share_in_use"]

log = logging.getLogger(__name__)
BUDGET = 0.75  # share of the map limit programs may fill: the rest is headroom for the programs being compiled
INTERVAL_S = 0.1  # least time between two readings: reading 30,000 maps takes 34 ms on a 2-core CPU
_releasers: list[Callable[[], None]] = []
_last_reading = -float("inf")


def register(release: Callable[[], None]) -> None:
    """Have `check` call `release()` (which drops a stage's compiled programs) when the budget is spent."""
    if release not in _releasers:
        _releasers.append(release)


def share_in_use() -> float | None:
    """Share of the process's memory-map limit in use (Linux), else None."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb", buffering=0) as maps:
            lines = 0
            while chunk := maps.read(1 << 20):
                lines += chunk.count(b"\n")
        return lines / limit
    except (OSError, ValueError):
        return None


@functools.cache
def countable() -> bool:
    """Whether this process's maps can be counted (Linux): where not, stages bound their programs by number."""
    return share_in_use() is not None


def check(budget: float | None = None) -> bool:
    """Drop every compiled program (each stage's registered ones and jax's caches) if the process's maps exceed
    `budget` (default `BUDGET`); whether they were dropped. Readings are at least `INTERVAL_S` apart, since
    compiling a program takes longer than that, unless `budget` is given."""
    global _last_reading
    now = time.monotonic()
    if budget is None and now - _last_reading < INTERVAL_S:
        return False
    _last_reading = now
    used = share_in_use()
    if used is None or used <= (BUDGET if budget is None else budget):
        return False
    for release in _releasers:
        release()
    jax.clear_caches()
    gc.collect()
    log.info("memory maps at %.0f%% of the limit: compiled programs dropped, now %s", 100 * used, share_in_use())
    return True
