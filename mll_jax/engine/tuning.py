"""Choosing how a group of models runs (strategy, head width), by measurement, remembered on disk (method.md §5).

The candidates are timed on the real group at the real batch size on the current
backend; the result is kept in `<cache>/engine/strategies.json` under a key naming
the backend, mesh, group signature, group size, padded head width, batch size,
dtype, jax's version and a digest of the code the programs are made of (a measurement
of other code says nothing of this one). The loop is kept unless another strategy
beats it by `configs.engine.STRATEGY_MARGIN`, so the engine is never slower than the
plain loop by more than measurement noise. `MLL_JAX_STRATEGY` overrides.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax

from mll_jax import exported, paths
from mll_jax.configs.engine import STRATEGY_BUDGET_S, STRATEGY_MARGIN, STRATEGY_REPEATS

__all__ = ["STRATEGIES", "choose", "code_version", "forced", "log", "measured", "timings"]

STRATEGIES = ("vmap", "map", "loop")
log = logging.getLogger(__name__)


@functools.cache
def code_version() -> str:
    """jax's version and a digest of the code a measured program runs (the architectures, their operations, the
    engine, the preprocessing): when the demo CNN's first convolution changed form, a remembered choice of vmap
    over the loop left the engine labelling 0.81x as fast as the plain loop."""
    package = Path(__file__).parents[1]
    files = sorted([*package.glob("nets/*.py"), *package.glob("engine/*.py"), package / "data" / "preprocess.py"])
    return f"jax {jax.__version__}|code {exported.source_digest(files)}"


def _table_path():
    return paths.cache_dir() / "engine" / "strategies.json"


def measured() -> dict[str, dict]:
    """Every remembered measurement: key -> {strategy, seconds per strategy}."""
    try:
        return json.loads(_table_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _remember(key: str, record: dict) -> None:
    path = _table_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    table = measured() | {key: record}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
    os.replace(tmp, path)


def timings(
    runs: dict[str, Callable[[], object]], rounds: int = STRATEGY_REPEATS, budget_s: float = STRATEGY_BUDGET_S
) -> dict[str, float]:
    """Median wall time of each of `runs` over up to `rounds` rounds, after one warm-up call each (which compiles);
    no round starts once the timed calls have taken `budget_s` (the first always runs).

    Every round runs each candidate once, the order rotating from round to round, so a change in the
    machine's load hits all alike: timed one after the other (best of 3 each), the demo CNN with 5 heads at batch
    512 came out 7.9 ms unpadded against 5.4 ms padded, where 200 interleaved calls gave 5.6 against 5.9 ms.
    The budget bounds what a large model costs: EfficientNet-Lite0 at batch 512 takes 9-14 s a call on CPU."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names, spent = list(runs), 0.0
    for round_ in range(rounds):
        if round_ and spent >= budget_s:
            break
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
            spent += times[name][-1]
    return {name: statistics.median(t) for name, t in times.items()}


def forced() -> str | None:
    """The strategy `MLL_JAX_STRATEGY` forces, if any."""
    value = os.environ.get("MLL_JAX_STRATEGY")
    if value and value not in STRATEGIES:
        raise ValueError(f"MLL_JAX_STRATEGY={value!r} is not one of {STRATEGIES}")
    return value or None


def choose(key: str, candidates: dict[str, Callable[[], Callable[[], object]]], baseline: str = "loop") -> str:
    """The fastest of `candidates` for `key`: remembered, or measured now.

    `candidates` maps a name to a factory of a function that runs one batch and
    waits for it. `baseline` (the plain way) is kept unless another is faster by `STRATEGY_MARGIN`.
    """
    key = f"{key}|{code_version()}"
    if key in (known := measured()):
        return known[key]["strategy"]
    times = timings({name: make() for name, make in candidates.items()})
    best = min(times, key=times.get)
    if baseline in times and times[baseline] <= STRATEGY_MARGIN * times[best]:
        best = baseline
    log.info("choice for %s: %s (%s)", key, best, ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items()))
    _remember(key, {"strategy": best, "seconds": times})
    return best
