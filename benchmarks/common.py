"""What the benchmarks share: one way to time sides against each other, one way to write results.

The benchmarks are scripts run from this folder (`python benchmarks/NAME.py`); this
module is the one they import from each other, so no script is imported as a library.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import jax

MIN_REPEATS = 5  # the command lines refuse fewer: medians of fewer say little


def interleaved(sides: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Each side's wall times over `repeats` rounds, the sides run in turn in every round so a change in the
    machine's load hits all alike, their order rotated each round (A, B, C; B, C, A; ...) so no side always
    follows the same one (PyTorch's OpenMP threads spin on for a while after a forward, slowing whatever runs
    next); and each side's output of its warm-up call (which compiles)."""
    outputs = {name: jax.block_until_ready(fn()) for name, fn in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides.items())
    for round_ in range(repeats):
        shift = round_ % len(order)
        for name, fn in order[shift:] + order[:shift]:
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return times, outputs


def timed(fn, *args, **kwargs) -> float:
    """Seconds of one call, waiting for its result."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args, **kwargs))
    return time.perf_counter() - start


def save(result: dict, path: str | Path) -> None:
    """Write `result` as JSON (benchmarks call it after every section, so a stopped run keeps what it measured)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1))


class Compilations:
    """Counts the XLA compilations that run while it is registered (jax.monitoring's backend-compile events)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._heard)

    def _heard(self, event: str, duration: float, **_) -> None:
        if event == self.EVENT:
            self.count += 1

    def close(self) -> None:
        jax.monitoring.unregister_event_duration_listener(self._heard)
