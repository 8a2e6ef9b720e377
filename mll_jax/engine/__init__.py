"""The execution engine: every model call (labelling, reuse, baselines) runs here.

`forward` holds the pure functions, `group` a group of models on the mesh and its
compiled programs, `runner` the `Engine` that streams batches through the groups,
`tuning` the measured choice of strategy, head width and rows a step, `sharding` the mesh.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mll_jax.engine.forward import Layout, Member, group_probabilities, signature
    from mll_jax.engine.runner import (
        BATCH_SIZE,
        DTYPES,
        Engine,
        from_hub,
        hub_member,
        hub_members,
        model_features,
        model_probabilities,
        pad_rows,
    )

# Loaded on first use (PEP 562): `engine.sharding` is all selection needs, and the rest imports flax.
_FROM_FORWARD = ("Layout", "Member", "group_probabilities", "signature")  # the rest of `__all__` is the runner's
__all__ = [
    "BATCH_SIZE",
    "DTYPES",
    "Engine",
    "Layout",
    "Member",
    "from_hub",
    "group_probabilities",
    "hub_member",
    "hub_members",
    "model_features",
    "model_probabilities",
    "pad_rows",
    "signature",
]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'mll_jax.engine' has no attribute {name!r}")
    module = "mll_jax.engine.forward" if name in _FROM_FORWARD else "mll_jax.engine.runner"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
