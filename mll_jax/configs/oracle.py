"""The oracle baseline's recipe (method.md §4): per task, a model trained on exactly the task's classes.

The architecture is the demo hub's largest expert CNN and the data budget its
CNNs' (items per class from the expert pool), so an oracle differs from a
covering expert only in training on the task's own classes and to convergence:
Adam until accuracy on the task's development-split items has not risen for
`patience` epochs, keeping the best epoch. None of these numbers was tuned:
`max_epochs` bounds the time an oracle may take (the demo JSON keeps each
oracle's history, so an oracle that reached it shows), and `patience` is the
smallest that survives one noisy epoch.
"""

from __future__ import annotations

import dataclasses

from mll_jax.configs import open_world_hub
from mll_jax.configs.demo_hub import CNN_ITEMS, LARGE_CNN
from mll_jax.configs.specs import OracleSpec

__all__ = ["OPEN_WORLD_ORACLE", "ORACLE", "get_config"]

ORACLE = OracleSpec(
    arch="cnn",
    config=LARGE_CNN,
    per_class=CNN_ITEMS,
    max_epochs=12,
    patience=2,
    batch_size=128,
    learning_rate=2e-3,
)
# The open world's: the same recipe in colour, at its experts' input shape (32x32 RGB).
OPEN_WORLD_ORACLE = dataclasses.replace(
    ORACLE,
    config={**LARGE_CNN, "in_channels": 3, "image_size": open_world_hub.INPUT_SPEC["shape"][0]},
    input_spec=dict(open_world_hub.INPUT_SPEC),
)


def get_config(source: str) -> OracleSpec:
    """The oracle recipe for a hub whose store spec has `source`."""
    return OPEN_WORLD_ORACLE if source == "open_world" else ORACLE
