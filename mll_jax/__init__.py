"""mll_jax: Model Label Learning in JAX.

import mll_jax as mll
hub = mll.Hub.open()                       # ~/.cache/mll_jax/hub
sel = mll.select(hub, ["sandal", "sneakers", "ankle boot"])
clf = mll.reuse(hub, sel)                  # jitted: uint8 images -> logits [B, 3]

The package is one folder per stage, each importing only the ones below it
(checked by import-linter, see pyproject.toml): cli > experiments > classifier (reuse) >
selection > labeling > hub > engine > concepts > converters > nets > data > configs.
"""

from mll_jax.classifier import reuse
from mll_jax.concepts.task import TaskError
from mll_jax.hub.hub import Hub
from mll_jax.labeling.labels import label
from mll_jax.selection.selecting import select, select_many
from mll_jax.selection.types import Selection

__all__ = ["Hub", "Selection", "TaskError", "label", "reuse", "select", "select_many"]
__version__ = "0.1.0"
