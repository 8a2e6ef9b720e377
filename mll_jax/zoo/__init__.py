"""The zoo, a factory: experts and general models made from specs (`configs/`) and put into a hub.

`experts` trains the demo hub's experts (and `build`s a hub from a `HubConfig`),
`generate` thousands of cheap experts in vmapped batches, `general` the general
model (`captions` its paper-regime data, `clip_general` its CLIP backend), `train`
the training loops they share. The store itself is `mll_jax.hub`, one layer down;
the zoo uses only its public surface.
"""

from mll_jax.zoo.experts import build

__all__ = ["build"]
