"""The hub: models on disk (registry, checkpoints, labels, SDAG), training them, the demo zoo, the general model."""

from mll_jax.hub.hub import Hub

__all__ = ["Hub"]
