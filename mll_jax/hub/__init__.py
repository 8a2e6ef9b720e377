"""The hub, a store: models on disk (database, checkpoints, label records, SDAG), read and written only through `Hub`.

Making experts is the zoo's business (`mll_jax.zoo`), one layer up.
"""

from mll_jax.hub.entries import BackboneEntry, ModelEntry
from mll_jax.hub.hub import Hub

__all__ = ["BackboneEntry", "Hub", "ModelEntry"]
