"""The general model's regimes by name (method.md §3.4): what `GeneralSpec` each one is.

- `paper` (the default): the paper's regime. The aligned tower learns the domain
  from a small captioned sample of the expert pool (`CaptionRule`), as a web model
  would; it never sees a store image.
- `in-domain`: the ablation. The aligned tower trains on the store's fit half
  with every concept's own text, so it is a classifier of the very concepts it
  patches.
"""

from __future__ import annotations

from mll_jax.configs.specs import GeneralSpec

__all__ = ["DEFAULT", "REGIMES", "get_config"]

REGIMES = {
    "paper": GeneralSpec("aligned", data="captions"),
    "in-domain": GeneralSpec("aligned", data="store"),
}
DEFAULT = "paper"


def get_config(regime: str = DEFAULT) -> GeneralSpec:
    if regime not in REGIMES:
        raise ValueError(f"unknown general-model regime {regime!r}; choose one of {sorted(REGIMES)}")
    return REGIMES[regime]
