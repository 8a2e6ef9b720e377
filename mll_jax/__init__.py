"""mll_jax: Model Label Learning in JAX.

import mll_jax as mll
hub = mll.Hub.open()                       # ~/.cache/mll_jax/hub
sel = mll.select(hub, ["sandal", "sneakers", "ankle boot"])
clf = mll.reuse(hub, sel)                  # jitted: uint8 images -> logits [B, 3]

The package is one folder per stage, each importing only the ones below it
(checked by import-linter, see pyproject.toml): cli > experiments > zoo > classifier (reuse) >
selection > labeling > hub > engine > concepts > converters > nets > data > configs.

Importing it changes nothing outside it. jax's persistent compilation cache is turned
on (under the cache directory) when mll_jax's engine or selection programs load, unless
`MLL_JAX_NO_COMPILE_CACHE=1` is set or jax's cache was configured already.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mll_jax.classifier import reuse
    from mll_jax.concepts.task import TaskError
    from mll_jax.configs.selection import SelectionConfig, SolverConfig
    from mll_jax.hub.hub import Hub
    from mll_jax.labeling.labels import label
    from mll_jax.selection.selecting import select, select_many
    from mll_jax.selection.types import Selection

# Imported on first use (PEP 562), not here: every `import mll_jax.x` runs this file first, and these
# pull in jax, flax and orbax, seconds that `mll-jax --help` or `sdag show` should not pay.
_LAZY = {
    "Hub": "mll_jax.hub.hub",
    "Selection": "mll_jax.selection.types",
    "SelectionConfig": "mll_jax.configs.selection",
    "SolverConfig": "mll_jax.configs.selection",
    "TaskError": "mll_jax.concepts.task",
    "label": "mll_jax.labeling.labels",
    "reuse": "mll_jax.classifier",
    "select": "mll_jax.selection.selecting",
    "select_many": "mll_jax.selection.selecting",
}
__all__ = [
    "Hub",
    "Selection",
    "SelectionConfig",
    "SolverConfig",
    "TaskError",
    "label",
    "reuse",
    "select",
    "select_many",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mll_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
