"""The execution engine (DESIGN 5): the one place the library runs models on images.

Models are grouped by architecture signature (same class and parameter shapes up to
the head size). A group runs with one strategy:

    vmap    parameters stacked on a leading model axis, `jax.vmap` over it
    map     the same stack, `jax.lax.map` over it (one model at a time, one program)
    loop    one jitted call per model (what a JAX user writes first)
    shared  heads over one shared backbone: the backbone runs once per batch and
            every head of the family is one matmul

Heads are padded to the group's widest head, or further, to a multiple of
`HEAD_ALIGN`, where that is measured faster; padded heads get a bias of -1e9, so
their softmax probability is exactly 0 and the real heads' probabilities are
unchanged. On XLA:CPU a CNN whose head layer is at least 8 wide compiles its conv,
dense and head layers into one fused library call, 1.35x faster than with 2-6
heads, while an MLP runs 2x slower that way. So the head width, like the choice
between vmap, map and loop, is measured (`tuning.py`).

Parameters live on a ('data', 'model') mesh: stacks are split along the model axis,
batches along the data axis, and every program is a `jax.jit` with in/out shardings.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from mll_jax import models, sharding, tuning

MASKED = -1e9  # bias of a padded head
HEAD_ALIGN = 8  # head layers are padded to a multiple of this width
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Member:
    """One model for the engine. With `backbone`, `model` holds only the heads (`linear`)."""

    id: str
    model: nnx.Module
    input_spec: dict
    backbone: str | None = None


@dataclasses.dataclass(frozen=True)
class Layout:
    """The static part of a group (a jit static argument): how its parameters are laid out."""

    strategy: str  # vmap | map | loop | shared
    graphdefs: tuple  # loop: one per model; otherwise the group's one graphdef (shared: the backbone's)
    treedefs: tuple  # the matching states' tree structures: parameters travel as flat leaf lists
    spec: tuple
    heads: tuple[int, ...]
    width: int  # every model's head layer padded to this width (>= max(heads))


def head_widths(heads: Iterable[int]) -> tuple[int, ...]:
    """A group's candidate head widths: its widest head, and that rounded up to a multiple of `HEAD_ALIGN`."""
    widest = max(heads)
    return tuple(dict.fromkeys([widest, -(-widest // HEAD_ALIGN) * HEAD_ALIGN]))


def spec_key(input_spec: dict) -> tuple:
    """Hashable form of the numeric part of an input spec (a static jit argument)."""
    return tuple(sorted((k, float(v)) for k, v in input_spec.items() if isinstance(v, int | float)))


# -- pure functions ------------------------------------------------------------------
def preprocess(spec: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """uint8 images -> the model's input, in the dtype of its parameters."""
    dtype = jax.tree.leaves(state)[0].dtype
    return models.preprocess(images, dict(spec)).astype(dtype)


def forward(graphdef: nnx.GraphDef, spec: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """Softmax head probabilities [B, H] of one model on uint8 images."""
    logits = nnx.merge(graphdef, state)(preprocess(spec, state, images))
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def features(graphdef: nnx.GraphDef, spec: tuple, state: nnx.State, images: jax.Array) -> jax.Array:
    """A backbone's features [B, F] on uint8 images."""
    return nnx.merge(graphdef, state).features(preprocess(spec, state, images))


def forward_leaves(graphdef: nnx.GraphDef, treedef, spec: tuple, leaves: list, images: jax.Array) -> jax.Array:
    """`forward` with the state as a flat list of arrays (cheaper to pass into a jitted call)."""
    return forward(graphdef, spec, jax.tree.unflatten(treedef, leaves), images)


def group_probabilities(layout: Layout, params, images: jax.Array) -> jax.Array:
    """Probabilities [M, B, layout.width] of every model of a group (padded heads are 0)."""
    if layout.strategy == "shared":
        backbone = jax.tree.unflatten(layout.treedefs[0], params["backbone"])
        feats = features(layout.graphdefs[0], layout.spec, backbone, images)
        logits = jnp.einsum("bf,mfh->bmh", feats, params["kernel"]) + params["bias"]
        # softmax before the transpose to [M, B, H]: XLA:CPU then fuses the backbone's tail, heads and softmax
        return jnp.moveaxis(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), 1, 0)
    if layout.strategy == "loop":
        outs = [
            forward_leaves(g, t, layout.spec, p, images) for g, t, p in zip(layout.graphdefs, layout.treedefs, params)
        ]
        return jnp.stack(outs)
    run = functools.partial(forward_leaves, layout.graphdefs[0], layout.treedefs[0], layout.spec)
    if layout.strategy == "vmap":
        return jax.vmap(run, in_axes=(0, None))(params, images)
    return jax.lax.map(lambda leaves: run(leaves, images), params)


def chunked(fn, chunks: int):
    """`fn(params, images[B])` -> `[..., B, H]` made to take `chunks` batches at once, `images[chunks * B]`.

    One dispatch runs them all (`lax.map`, one batch at a time, so memory stays that of one
    batch): at small batch sizes the per-call cost of Python and the runtime dominates.
    """
    if chunks == 1:
        return fn

    def run(params, images: jax.Array) -> jax.Array:
        out = jax.lax.map(lambda x: fn(params, x), images.reshape(chunks, -1, *images.shape[1:]))
        out = jnp.moveaxis(out, 0, -3)  # [..., chunks, B, H]
        return out.reshape(*out.shape[:-3], -1, out.shape[-1])

    return run


def _cast(dtype, x: jax.Array) -> jax.Array:
    return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x


def _is_head(path) -> bool:
    return jax.tree_util.keystr(path).startswith("['head']")


def pad_heads(state: nnx.State, width: int) -> nnx.State:
    """The state with its head widened to `width` outputs (zero kernel columns, masked biases)."""
    if "bias" not in state["head"]:
        raise ValueError("a model's head layer needs a bias (padded heads are masked through it); got none")

    def pad(path, x):
        if not _is_head(path) or x.shape[-1] == width:
            return x
        value = MASKED if x.ndim == 1 else 0.0
        return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])], constant_values=value)

    return jax.tree_util.tree_map_with_path(pad, state)


def signature(member: Member) -> str:
    """Models with equal signatures can share one stacked program."""
    if member.backbone is not None:
        parts = ["shared", member.backbone, spec_key(member.input_spec)]
    else:
        state = nnx.state(member.model)
        shapes = [
            (jax.tree_util.keystr(p), x.shape[:-1] if _is_head(p) else x.shape, str(x.dtype))
            for p, x in jax.tree_util.tree_leaves_with_path(state)
        ]
        parts = [type(member.model).__name__, shapes, spec_key(member.input_spec)]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


# -- compiled programs (cached per layout and mesh, so engines over the same models share them)
def _stack_spec(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("model"))


def _jit(fn, mesh: Mesh, in_shardings, out_shardings):
    # On a one-device mesh the shardings say nothing, and a plain jit dispatches faster.
    if mesh.size == 1:
        return jax.jit(fn)
    return jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings)


@functools.cache
def _group_program(layout: Layout, mesh: Mesh, chunks: int = 1):
    stacked, replicated = _stack_spec(mesh), NamedSharding(mesh, P())
    params = {"backbone": replicated, "kernel": stacked, "bias": stacked} if layout.strategy == "shared" else stacked
    program = chunked(functools.partial(group_probabilities, layout), chunks)
    return _jit(program, mesh, (params, NamedSharding(mesh, P("data"))), NamedSharding(mesh, P("model", "data")))


@functools.cache
def _model_program(graphdef: nnx.GraphDef, treedef, spec: tuple, mesh: Mesh, chunks: int = 1):
    data = NamedSharding(mesh, P("data"))
    program = chunked(functools.partial(forward_leaves, graphdef, treedef, spec), chunks)
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
    ):
        self.members, self.mesh = members, mesh
        self.heads = tuple(m.model.head.out_features for m in members)
        cast = functools.partial(jax.tree.map, functools.partial(_cast, dtype))
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
            self.size = sharding.round_up(len(padded), mesh, "model")
            padded += [padded[0]] * (self.size - len(padded))
            stack = jax.tree.map(lambda *xs: jnp.stack(xs), *padded)
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
        self.layout = Layout(strategy, graphdefs, treedefs, spec, self.heads, self.width)
        self.params = params

    def run(self, images: jax.Array, chunks: int = 1) -> list[jax.Array]:
        """The group's outputs on `chunks` batches (dispatched, not waited for): per model, or one stack."""
        layout, mesh = self.layout, self.mesh
        if layout.strategy == "loop":
            programs = [
                _model_program(g, t, layout.spec, mesh, chunks) for g, t in zip(layout.graphdefs, layout.treedefs)
            ]
            return [program(p, images) for program, p in zip(programs, self.params)]
        return [_group_program(layout, mesh, chunks)(self.params, images)]

    def split(self, outputs: list[np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Each model's probabilities [rows, H] from the host copies of `run`'s outputs."""
        if self.layout.strategy == "loop":
            return {m.id: o[:rows, :h] for m, o, h in zip(self.members, outputs, self.heads)}
        return {m.id: outputs[0][i, :rows, :h] for i, (m, h) in enumerate(zip(self.members, self.heads))}


class Engine:
    """Runs many models over image batches: grouped, stacked, sharded, streamed.

    `strategy` forces one of `tuning.STRATEGIES` for every stackable group, and
    `pad_heads` True / False forces head layers padded to a multiple of `HEAD_ALIGN`
    or not; by default both are measured once per backend and batch size.
    On one device, up to `chunk_rows` rows (whole batches) go to the device and
    run as one dispatch; batches are still computed `batch_size` at a time.
    """

    def __init__(
        self,
        members: list[Member],
        backbones: dict[str, nnx.Module] | None = None,
        *,
        batch_size: int = 512,
        dtype: str = "float32",
        mesh: Mesh | None = None,
        strategy: str | None = None,
        chunk_rows: int = 4096,
        pad_heads: bool | None = None,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not supported; use one of {sorted(DTYPES)}")
        if strategy is not None and strategy not in tuning.STRATEGIES:
            raise ValueError(f"strategy {strategy!r} is not one of {tuning.STRATEGIES}")
        ids = [m.id for m in members]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique, got {ids}")
        backbones = backbones or {}
        missing = sorted({m.backbone for m in members if m.backbone is not None} - set(backbones))
        if missing:
            raise ValueError(f"members name backbones {missing} that were not given to the engine")
        self.mesh = mesh or sharding.mesh()
        self.batch_size = sharding.round_up(batch_size, self.mesh, "data")
        # Chunks only on one device: a row-sharded chunk would not split into per-device batches.
        self.chunks = max(1, chunk_rows // self.batch_size) if self.mesh.size == 1 else 1
        self._rows = NamedSharding(self.mesh, P("data"))  # batches: split over the data axis
        self.dtype = dtype
        by_signature: dict[str, list[Member]] = collections.defaultdict(list)
        for m in members:
            by_signature[signature(m)].append(m)
        forced = strategy or tuning.forced()
        self.pad_heads = pad_heads
        self.groups = []
        for key, group in by_signature.items():
            backbone = backbones.get(group[0].backbone)
            measurable = "shape" in group[0].input_spec
            if backbone is not None:
                chosen = "shared"
            elif len(group) == 1 or not measurable:  # nothing to stack, or no shape to measure
                chosen = "loop"
            else:
                chosen = None
            width = self._width(key, group, chosen or "loop", backbone) if measurable else None
            if chosen is None:
                chosen = forced or tuning.choose(
                    self._tuning_key(key, group, f"heads {width}"),
                    {s: self._runner(group, s, backbone, width) for s in tuning.STRATEGIES},
                )
            self.groups.append(self._group(group, chosen, backbone, width))

    def _group(self, members: list[Member], strategy: str, backbone=None, width: int | None = None) -> Group:
        return Group(members, strategy, self.mesh, DTYPES[self.dtype], backbone, width)

    def _width(self, key: str, members: list[Member], strategy: str, backbone) -> int:
        """The group's head width: its widest head, or that rounded up where measured faster (one model stands
        for a stack: the width changes how each model's program compiles)."""
        widths = head_widths(m.model.head.out_features for m in members)
        if len(widths) == 1 or self.pad_heads is not None:
            return widths[-1] if self.pad_heads else widths[0]
        sample = members if strategy == "shared" else members[:1]
        runners = {str(w): self._runner(sample, strategy, backbone, w) for w in widths}
        key = self._tuning_key(key, sample, f"head width for {widths[0]}")
        return int(tuning.choose(key, runners, baseline=str(widths[0])))

    def _tuning_key(self, signature_key: str, members: list[Member], what: str) -> str:
        device = jax.local_devices()[0]
        shape = "x".join(map(str, self.mesh.devices.shape))
        size = f"{len(members)} models|{what}|batch {self.batch_size}|{self.dtype}"
        return f"{device.platform}:{device.device_kind}|mesh {shape}|{signature_key}|{size}"

    def _runner(self, members: list[Member], strategy: str, backbone, width: int):
        """A factory of a function that runs `members` on one batch and waits (for `tuning.choose`)."""

        def make():
            images = self.place(np.zeros((self.batch_size, *members[0].input_spec["shape"]), np.uint8))
            group = self._group(members, strategy, backbone, width)
            return lambda: jax.block_until_ready(group.run(images))

        return make

    def place(self, batch: np.ndarray) -> jax.Array:
        """A host batch on the devices, split over the data axis."""
        if self.mesh.size == 1:  # without the sharded-transfer overhead (~40 us a batch on CPU)
            device = self.mesh.devices.flat[0]
            return jnp.asarray(batch) if device == jax.devices()[0] else jax.device_put(batch, device)
        return jax.device_put(batch, self._rows)

    @property
    def strategies(self) -> dict[str, str]:
        """Model id -> the strategy its group runs with."""
        return {m.id: g.layout.strategy for g in self.groups for m in g.members}

    def probabilities(
        self, images: np.ndarray | Iterable[np.ndarray], progress: str | None = None
    ) -> dict[str, np.ndarray]:
        """Each model's probabilities [N, H] on uint8 images (an array, or an iterable of batches).

        Batches stream through the engine: the next batch is copied to the devices
        while the current one runs, so inputs larger than memory can be passed as
        an iterator (or a memory-mapped array).
        """
        total = len(images) if isinstance(images, np.ndarray) else None
        parts: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        pending = None  # the chunk in flight: (outputs per group, real rows)
        pieces = itertools.chain(self._pieces(_rebatch(images, self.batch_size * self.chunks)), [(None, 0)])
        with tqdm(total=total, desc=progress, disable=progress is None, leave=False, unit="img") as bar:
            for batch, chunks in pieces:  # lazily: inputs may not fit in memory
                if batch is not None:
                    placed = self.place(pad_rows(batch, self.batch_size * chunks))
                    running = ([g.run(placed, chunks) for g in self.groups], len(batch))
                if pending is not None:
                    outputs, rows = pending
                    for group, out in zip(self.groups, outputs):
                        for model_id, probs in group.split([np.asarray(o) for o in out], rows).items():
                            parts[model_id].append(probs)
                    bar.update(rows)
                pending = running if batch is not None else None
        return {
            m.id: np.concatenate(parts[m.id]) if parts[m.id] else np.zeros((0, h), np.float32)
            for g in self.groups
            for m, h in zip(g.members, g.heads)
        }

    def _pieces(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, int]]:
        """(rows, batches) to run: whole chunks, and a short last chunk cut into power-of-two numbers of batches
        (few programs to compile, little padding)."""
        for rows in chunks:
            batches = -(-len(rows) // self.batch_size)
            while batches:
                take = min(self.chunks, 1 << (batches.bit_length() - 1))
                yield rows[: take * self.batch_size], take
                rows, batches = rows[take * self.batch_size :], batches - take


def _rebatch(images: np.ndarray | Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Batches of exactly `size` rows (the last one shorter) from an array or any iterable of batches."""
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), size):
            yield images[start : start + size]
        return
    buffer, buffered = [], 0
    for batch in images:
        batch = np.asarray(batch)
        buffer.append(batch)
        buffered += len(batch)
        while buffered >= size:
            joined = np.concatenate(buffer)
            yield joined[:size]
            buffer, buffered = [joined[size:]], buffered - size
    if buffered:
        yield np.concatenate(buffer)


def pad_rows(batch: np.ndarray, size: int) -> np.ndarray:
    missing = size - len(batch)
    return batch if missing == 0 else np.concatenate([batch, np.zeros((missing, *batch.shape[1:]), batch.dtype)])


def model_probabilities(
    model: nnx.Module, input_spec: dict, images: np.ndarray, batch_size: int = 512, dtype: str = "float32"
) -> np.ndarray:
    """Probabilities [N, H] of one model (a one-model engine)."""
    engine = Engine([Member("model", model, input_spec)], batch_size=min(batch_size, max(len(images), 1)), dtype=dtype)
    return engine.probabilities(images)["model"]


_features_program = jax.jit(features, static_argnums=(0, 1))


def model_features(model: nnx.Module, input_spec: dict, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """A backbone's features [N, F] on uint8 images (to train heads on it)."""
    graphdef, state = nnx.split(model)
    spec = spec_key(input_spec)
    out = [
        np.asarray(_features_program(graphdef, spec, state, pad_rows(b, batch_size)))[: len(b)]
        for b in _rebatch(images, batch_size)
    ]
    return np.concatenate(out)


def hub_member(hub, model_id: str, backbones: dict[str, nnx.Module]) -> Member:
    """One hub model as a member; its backbone, if new, is loaded into `backbones`."""
    entry = hub.entry(model_id)
    if (backbone := entry.get("backbone")) and backbone not in backbones:
        backbones[backbone] = hub.load_backbone(backbone)
    return Member(model_id, hub.load_model(model_id), entry["input_spec"], backbone)


def hub_members(hub, model_ids: list[str]) -> tuple[list[Member], dict[str, nnx.Module]]:
    """Members for hub models (loading each checkpoint) and the backbones they share."""
    backbones: dict[str, nnx.Module] = {}
    return [hub_member(hub, i, backbones) for i in model_ids], backbones


def from_hub(hub, model_ids: list[str], **options) -> Engine:
    """An engine over hub models."""
    return Engine(*hub_members(hub, model_ids), **options)
