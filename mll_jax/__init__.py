"""mll_jax: Model Label Learning in JAX.

import mll_jax as mll
hub = mll.Hub.open()                       # ~/.cache/mll_jax/hub
sel = mll.select(hub, ["sandal", "sneakers", "ankle boot"])
clf = mll.reuse(hub, sel)                  # jitted: uint8 images -> logits [B, 3]
"""

from mll_jax.classifier import reuse
from mll_jax.hub import Hub
from mll_jax.labeling import label
from mll_jax.selection import Selection, select
from mll_jax.task import TaskError

__all__ = ["Hub", "Selection", "TaskError", "label", "reuse", "select"]
__version__ = "0.1.0"
