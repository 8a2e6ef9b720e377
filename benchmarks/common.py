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
# Idle time before each timed call: PyTorch's OpenMP workers spin for a while after a forward pass, on the cores
# the next side needs. Without it, one demo CNN at batch 512 ran at 59k images/s right after PyTorch's loop and
# 97k with PyTorch's workers made to sleep at once (OMP_WAIT_POLICY=PASSIVE), which in turn halved PyTorch's
# own speed at batch 32. Set by hand: longer than the spin (a fraction of a second is ample).
PAUSE_S = 0.05


def balanced_orders(n: int) -> list[list[int]]:
    """Orders of `n` sides in which every side runs right after every other one equally often (a Williams
    design: n orders for even n, 2n for odd n)."""
    base = [0] + [(k + 1) // 2 if k % 2 else n - k // 2 for k in range(1, n)]  # 0, 1, n-1, 2, n-2, ...
    rows = [[(b + i) % n for b in base] for i in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def interleaved(sides: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Each side's wall times over `repeats` rounds, every side run once a round so a change in the machine's load
    hits all alike, the rounds' orders cycling through `balanced_orders` so that every side runs right after
    every other equally often: a side run right after PyTorch's forward pass was measured up to 30 % slower
    (EfficientNet-Lite at batch 256), so a fixed order favours whoever never follows it; and each timed call
    starts after `PAUSE_S` idle, so that no side runs beside another's spinning threads. Also each side's
    output of its warm-up call (which compiles). Use a multiple of the design's length (6 for 3 sides) as
    `repeats` for an exact balance."""
    outputs = {name: jax.block_until_ready(fn()) for name, fn in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    items, orders = list(sides.items()), balanced_orders(len(sides))
    for round_ in range(repeats):
        for name, fn in (items[k] for k in orders[round_ % len(orders)]):
            time.sleep(PAUSE_S)
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
