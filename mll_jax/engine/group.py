"""A group of models on the mesh, and its compiled programs (cached per layout and mesh, so engines
over the same models share them)."""

from __future__ import annotations

import copy
import functools

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mll_jax import memory_maps
from mll_jax.data.preprocess import spec_key
from mll_jax.engine import sharding
from mll_jax.engine.forward import Layout, Member, chunked, forward_leaves, group_probabilities, pad_heads
from mll_jax.nets import precision

__all__ = ["Group"]


def _stack_spec(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("model"))


def _jit(fn, mesh: Mesh, in_shardings, out_shardings):
    # On a one-device mesh the shardings say nothing, and a plain jit dispatches faster.
    if mesh.size == 1:
        return jax.jit(fn)
    return jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings)


@functools.cache
def _group_program(layout: Layout, mesh: Mesh, steps: int = 1):
    stacked, replicated = _stack_spec(mesh), NamedSharding(mesh, P())
    params = {"backbone": replicated, "kernel": stacked, "bias": stacked} if layout.strategy == "shared" else stacked
    program = chunked(functools.partial(group_probabilities, layout), steps)
    return _jit(program, mesh, (params, NamedSharding(mesh, P("data"))), NamedSharding(mesh, P("model", "data")))


@functools.cache
def _model_program(graphdef: nnx.GraphDef, treedef, spec: tuple, mesh: Mesh, steps: int = 1):
    data = NamedSharding(mesh, P("data"))
    program = chunked(functools.partial(forward_leaves, graphdef, treedef, spec), steps)
    return _jit(program, mesh, (NamedSharding(mesh, P()), data), data)


class Group:
    """Models of one signature, their parameters on the mesh, and the strategy that runs them."""

    def __init__(
        self,
        members: list[Member],
        strategy: str,
        mesh: Mesh,
        dtype,
        backbone: nnx.Module | None = None,
        width: int | None = None,
        steps: int = 1,
    ):
        self.members, self.mesh = members, mesh
        self.steps = steps  # a batch is computed in this many equal steps, one after the other, in each program
        self.heads = tuple(m.model.head.out_features for m in members)
        # in a narrower dtype, batch norms keep float32 parameters (nets/precision.py); one signature, one layout
        keep = precision.full_precision_paths(backbone if strategy == "shared" else members[0].model)
        cast = functools.partial(precision.cast, dtype=dtype, keep=keep)
        spec = spec_key(members[0].input_spec)
        split = [nnx.split(m.model) for m in members]
        self.width = width or max(self.heads)
        self.size = len(members)  # models in the group's output, padding included
        padded = [pad_heads(s, self.width) for _, s in split]
        if strategy == "loop":
            graphdefs = tuple(g for g, _ in split)
            treedefs = tuple(jax.tree.structure(s) for s in padded)
            params = tuple(sharding.replicate(jax.tree.leaves(cast(s)), mesh) for s in padded)
        else:
            # heads over a backbone: padded to a power of two (a few more columns of one matmul), so that
            # families of any size share programs; stacks come in power-of-two pieces already (`stack_pieces`)
            self.size = sharding.round_up(1 << (len(padded) - 1).bit_length(), mesh, "model")
            padded += [padded[0]] * (self.size - len(padded))
            stack = jax.tree.map(lambda *xs: np.stack(xs), *padded)  # on the host, as `pad_heads`
            if strategy == "shared":
                graphdef, backbone_state = nnx.split(backbone)
                graphdefs, treedefs = (graphdef,), (jax.tree.structure(backbone_state),)
                head = stack["head"]
                params = {
                    "backbone": sharding.replicate(jax.tree.leaves(cast(backbone_state)), mesh),
                    "kernel": jax.device_put(cast(head["kernel"][...]), _stack_spec(mesh)),
                    "bias": jax.device_put(cast(head["bias"][...]), _stack_spec(mesh)),
                }
            else:
                graphdefs, treedefs = (split[int(np.argmax(self.heads))][0],), (jax.tree.structure(stack),)
                params = jax.device_put(jax.tree.leaves(cast(stack)), _stack_spec(mesh))
        self.layout = Layout(strategy, graphdefs, treedefs, spec, self.width)
        self.params = params
        self._resolved: dict[int, list[tuple]] = {}  # dispatch size -> (program, parameters) pairs
        self.calls = len(graphdefs) if strategy == "loop" else 1  # program calls a dispatch

    def with_steps(self, steps: int) -> Group:
        """This group computing a batch in `steps` steps, on the same parameters (no second copy on the mesh)."""
        other = copy.copy(self)
        other.steps, other._resolved = steps, {}
        return other

    def run(self, images: jax.Array | np.ndarray, chunks: int = 1) -> list[jax.Array]:
        """The group's outputs on `chunks` batches (dispatched, not waited for): per model, or one stack. Each
        program computes them `steps` times a batch, a step at a time."""
        return [program(p, images) for program, p in self._programs(chunks)]

    def _programs(self, chunks: int) -> list[tuple]:
        """(program, parameters) pairs for a dispatch of `chunks` batches, looked up once per size: finding a
        program in the shared cache hashes its graphdef, which costs more than dispatching a small batch."""
        if chunks not in self._resolved:
            memory_maps.check()  # a new program is about to be compiled
            layout, mesh, steps = self.layout, self.mesh, chunks * self.steps
            if layout.strategy == "loop":
                programs = [
                    _model_program(g, t, layout.spec, mesh, steps) for g, t in zip(layout.graphdefs, layout.treedefs)
                ]
                self._resolved[chunks] = list(zip(programs, self.params))
            else:
                self._resolved[chunks] = [(_group_program(layout, mesh, steps), self.params)]
        return self._resolved[chunks]

    def split(self, outputs: list[np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Each model's probabilities [rows, H] from the host copies of `run`'s outputs."""
        if self.layout.strategy == "loop":
            return {m.id: o[:rows, :h] for m, o, h in zip(self.members, outputs, self.heads)}
        return {m.id: outputs[0][i, :rows, :h] for i, (m, h) in enumerate(zip(self.members, self.heads))}
