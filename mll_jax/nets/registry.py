"""Architecture registry: name -> Flax NNX module class, built from a config dict.

A leaf: it imports no architecture. Each architecture module registers itself with
`@register(name)`, and `mll_jax.nets` imports them all.

Every expert maps preprocessed images [B, H, W, C] (float32) to head logits [B, H]
as `head(features(x))`: `features` is everything below the last linear layer, so a
model can serve as the shared backbone of other experts' heads (`linear`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import jax
from flax import nnx

__all__ = ["ARCHITECTURES", "abstract", "build", "forward_flops", "num_params", "register"]

ARCHITECTURES: dict[str, type[nnx.Module]] = {}


def register(name: str) -> Callable[[type[nnx.Module]], type[nnx.Module]]:
    """Class decorator: `name` builds this architecture. A name registered twice is an error."""

    def add(cls: type[nnx.Module]) -> type[nnx.Module]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered (by {ARCHITECTURES[name].__qualname__})")
        ARCHITECTURES[name] = cls
        return cls

    return add


def build(arch: str, config: dict, num_heads: int, seed: int = 0) -> nnx.Module:
    """A freshly initialised model of architecture `arch`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; registered: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](num_heads, **config, rngs=nnx.Rngs(seed))


def abstract(arch: str, config: dict, num_heads: int) -> nnx.Module:
    """The model's structure without allocating parameters (for restoring): a new module each call."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; registered: {sorted(ARCHITECTURES)}")
    graphdef, state = _structure(arch, json.dumps(config, sort_keys=True), num_heads)
    return nnx.merge(graphdef, jax.tree.map(lambda v: v, state))  # fresh variables: models must not share them


@functools.cache
def _structure(arch: str, config_json: str, num_heads: int) -> tuple[nnx.GraphDef, nnx.State]:
    # Tracing a constructor under eval_shape costs 12-100 ms a model on CPU, nnx.merge under 1 ms: a process
    # that loads many models of few architectures traces each (arch, config, heads) once.
    return nnx.split(nnx.eval_shape(lambda: build(arch, json.loads(config_json), num_heads)))


def num_params(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@functools.cache
def _forward_flops(arch: str, config_json: str, num_heads: int, shape: tuple[int, ...], features: bool) -> float:
    graphdef, state = _structure(arch, config_json, num_heads)

    def forward(state, x):
        model = nnx.merge(graphdef, state)
        return model.features(x) if features else model(x)

    x = jax.ShapeDtypeStruct((1, *shape), jax.numpy.float32)
    cost = jax.jit(forward).lower(state, x).cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))


def forward_flops(arch: str, config: dict, num_heads: int, shape, features: bool = False) -> float:
    """XLA's FLOP count of one image's forward pass (`features`: up to the heads) at input `shape`, from the
    architecture alone (lowered on abstract parameters, never compiled; once per structure and process)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; registered: {sorted(ARCHITECTURES)}")
    return _forward_flops(arch, json.dumps(config, sort_keys=True), num_heads, tuple(shape), features)
