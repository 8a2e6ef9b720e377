"""Random tasks over a hub's concepts (benchmarks and soak runs; the demo suite is `configs.suite`)."""

from __future__ import annotations

import numpy as np

from mll_jax.hub import Hub

__all__ = ["random_tasks"]


def random_tasks(hub: Hub, count: int, rng: np.random.Generator, sizes: tuple[int, int] = (2, 7)) -> list[list[str]]:
    """`count` tasks, each of `sizes[0]` to `sizes[1] - 1` distinct concept nodes of the hub's SDAG."""
    nodes = hub.sdag.concept_nodes
    return [list(rng.choice(nodes, rng.integers(*sizes), replace=False)) for _ in range(count)]
