"""The execution engine: every model call (labelling, reuse, baselines) runs here.

`forward` holds the pure functions, `group` a group of models on the mesh and its
compiled programs, `runner` the `Engine` that streams batches through the groups,
`tuning` the measured choice of strategy and head width, `sharding` the mesh.
"""

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
)

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
    "signature",
]
