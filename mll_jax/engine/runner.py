"""The execution engine (method.md §5): the one place the library runs models on images.

Models are grouped by architecture signature (same class and parameter shapes up to
the head size). A group runs with one strategy:

    vmap    parameters stacked on a leading model axis, `jax.vmap` over it
    map     the same stack, `jax.lax.map` over it (one model at a time, one program)
    loop    one jitted call per model (what a JAX user writes first)
    shared  heads over one shared backbone: the backbone runs once per batch and
            every head of the family is one matmul

Stacks have power-of-two sizes: a signature's 11 models run as stacks of 8, 2 and 1
(no padded work), a family's heads are padded to a power of two (a few more matmul
columns). A hub that grows a model at a time, or selections that reuse 3 models
of a kind and then 5, then compile and measure a few programs, not one per size.

A batch is computed in steps of fewer rows where that is measured faster (one program
still takes the whole batch, or chunk of batches, and loops over its steps): on
XLA:CPU a demo CNN ran 1.5-1.7x as fast computing 128 rows a step as 512, its
convolutions' intermediate arrays then fitting in the cores' caches.

Heads are padded to the group's widest head, or further, to a multiple of
`HEAD_ALIGN`, where that is measured faster; padded heads get a bias of -1e9, so
their softmax probability is exactly 0 and the real heads' probabilities are
unchanged. On XLA:CPU a CNN whose head layer is at least 8 wide compiles its conv,
dense and head layers into one fused library call, faster than with 2-6 heads,
while an MLP runs slower that way. So the head width, like the choice between
vmap, map and loop, and the rows a step, is measured (`tuning.py`).

Parameters live on a ('data', 'model') mesh: stacks are split along the model axis,
batches along the data axis, and every program is a `jax.jit` with in/out shardings.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from mll_jax import paths
from mll_jax.configs.engine import BATCH_SIZE, IN_FLIGHT_BYTES, STEP_ROWS
from mll_jax.data.preprocess import spec_key
from mll_jax.engine import sharding, tuning
from mll_jax.engine.forward import Member, features, head_widths, signature
from mll_jax.engine.group import Group

__all__ = [
    "DTYPES",
    "Engine",
    "from_hub",
    "hub_member",
    "hub_members",
    "model_features",
    "model_probabilities",
    "pad_rows",
    "stack_pieces",
]

paths.default_compile_cache()  # every model call of mll_jax runs here: its programs go to jax's disk cache

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class Engine:
    """Runs many models over image batches: grouped, stacked, sharded, streamed.

    `strategy` forces one of `tuning.STRATEGIES` for every stackable group,
    `pad_heads` True / False forces head layers padded to a multiple of `HEAD_ALIGN`
    or not, and `step_rows` the rows each group computes at a time (a divisor of the batch size); by
    default all three are measured once per backend and batch size.
    On one device, up to `chunk_rows` rows (whole batches) go to the device and
    run as one dispatch; batches are still computed `batch_size` at a time.
    """

    def __init__(
        self,
        members: list[Member],
        backbones: dict[str, nnx.Module] | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        dtype: str = "float32",
        mesh: Mesh | None = None,
        strategy: str | None = None,
        chunk_rows: int = 4096,
        pad_heads: bool | None = None,
        step_rows: int | None = None,
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
        if step_rows is not None and (step_rows < 1 or self.batch_size % step_rows):
            raise ValueError(
                f"step_rows must divide the batch size {self.batch_size}; got {step_rows} (or leave it None: measured)"
            )
        if step_rows not in (None, self.batch_size) and self.mesh.size > 1:
            raise ValueError(
                f"step_rows applies on one device only (a batch split over {self.mesh.size} devices is already "
                "computed a share a device); leave it None"
            )
        # Chunks only on one device: a row-sharded chunk would not split into per-device batches.
        self.chunks = max(1, chunk_rows // self.batch_size) if self.mesh.size == 1 else 1
        self._rows = NamedSharding(self.mesh, P("data"))  # batches: split over the data axis
        self.dtype = dtype
        by_signature: dict[str, list[Member]] = collections.defaultdict(list)
        for m in members:
            by_signature[signature(m)].append(m)
        forced = strategy or tuning.forced()
        self.pad_heads, self.step_rows = pad_heads, step_rows
        self.groups = []
        self._host_batches = False  # set below, once the groups are known
        for key, members_of_key in by_signature.items():
            backbone = backbones.get(members_of_key[0].backbone)
            measurable = "shape" in members_of_key[0].input_spec
            shared = backbone is not None
            width = self._width(key, members_of_key, "shared" if shared else "loop", backbone) if measurable else None
            # A stack runs whole: its programs (and measurements) are for power-of-two sizes only, so a hub whose
            # groups grow one model at a time compiles a few of them, not one per size.
            for group in [members_of_key] if shared or not measurable else stack_pieces(members_of_key):
                if shared:
                    chosen = "shared"
                elif len(group) == 1 or not measurable:  # nothing to stack, or no shape to measure
                    chosen = "loop"
                else:
                    chosen = forced or tuning.choose(
                        self._tuning_key(key, group, f"heads {width}"),
                        {
                            s: self._runner(group, functools.partial(self._group, group, s, backbone, width))
                            for s in tuning.STRATEGIES
                        },
                    )
                if self.step_rows is not None:
                    steps = self.batch_size // self.step_rows
                else:
                    steps = self._steps(key, group, chosen, backbone, width) if measurable else 1
                self.groups.append(self._group(group, chosen, backbone, width, steps))
        # One program call a dispatch on one device (a lone model, or one stack): the call copies a host batch
        # itself, for less than `jax.device_put` costs in Python (~80 us a batch on CPU); several calls share
        # one copy placed ahead.
        self._host_batches = self.mesh.size == 1 and sum(g.calls for g in self.groups) == 1

    def _group(self, members: list[Member], strategy: str, backbone=None, width=None, steps: int = 1) -> Group:
        return Group(members, strategy, self.mesh, DTYPES[self.dtype], backbone, width, steps)

    def _width(self, key: str, members: list[Member], strategy: str, backbone) -> int:
        """The group's head width: its widest head, or that rounded up where measured faster (one model stands
        for a stack: the width changes how each model's program compiles)."""
        widths = head_widths(m.model.head.out_features for m in members)
        if len(widths) == 1 or self.pad_heads is not None:
            return widths[-1] if self.pad_heads else widths[0]
        sample = members if strategy == "shared" else members[:1]
        runners = {
            str(w): self._runner(sample, functools.partial(self._group, sample, strategy, backbone, w)) for w in widths
        }
        key = self._tuning_key(key, sample, f"head width for {widths[0]}")
        return int(tuning.choose(key, runners, baseline=str(widths[0])))

    def _steps(self, key: str, members: list[Member], strategy: str, backbone, width: int) -> int:
        """Steps a batch is computed in: one, or more where measured faster (rows a step from `STEP_ROWS` that
        divide the batch). Only on one device: a batch split over devices is each device's share already."""
        steps = [1] + [self.batch_size // r for r in STEP_ROWS if r < self.batch_size and self.batch_size % r == 0]
        if len(steps) == 1 or self.mesh.size > 1:
            return 1
        one = functools.cache(lambda: self._group(members, strategy, backbone, width))  # one copy of the parameters
        runners = {str(n): self._runner(members, lambda n=n: one().with_steps(n)) for n in steps}
        what = f"{strategy}|heads {width}|steps of a batch"
        return int(tuning.choose(self._tuning_key(key, members, what), runners, baseline="1"))

    def _tuning_key(self, signature_key: str, members: list[Member], what: str) -> str:
        device = jax.local_devices()[0]
        shape = "x".join(map(str, self.mesh.devices.shape))
        size = f"{len(members)} models|{what}|batch {self.batch_size}|{self.dtype}"
        return f"{device.platform}:{device.device_kind}|mesh {shape}|{signature_key}|{size}"

    def _runner(self, members: list[Member], make_group):
        """A factory of a function that runs the group `make_group` returns (over `members`) on one batch and
        waits (for `tuning.choose`)."""

        def make():
            images = self.place(np.zeros((self.batch_size, *members[0].input_spec["shape"]), np.uint8))
            group = make_group()
            return lambda: jax.block_until_ready(group.run(images))

        return make

    def place(self, batch: np.ndarray) -> jax.Array | np.ndarray:
        """A host batch where the engine's programs read it: on the devices, split over the data axis, or left
        on the host where one program call reads it."""
        if self._host_batches:
            return batch
        if self.mesh.size == 1:  # to the device, without the sharded-transfer overhead (~40 us a batch on CPU)
            return jax.device_put(batch, self.mesh.devices.flat[0])  # not jnp.asarray: it compiles a copy per shape
        return jax.device_put(batch, self._rows)

    @property
    def strategies(self) -> dict[str, str]:
        """Model id -> the strategy its group runs with."""
        return {m.id: g.layout.strategy for g in self.groups for m in g.members}

    @property
    def step_sizes(self) -> dict[str, int]:
        """Model id -> the rows its group computes at a time."""
        return {m.id: self.batch_size // g.steps for g in self.groups for m in g.members}

    def probabilities(
        self, images: np.ndarray | Iterable[np.ndarray], progress: str | None = None
    ) -> dict[str, np.ndarray]:
        """Each model's probabilities [N, H] on uint8 images (an array, or an iterable of batches).

        Batches stream through the engine: dispatches are queued without waiting, each
        output starts its copy back to the host as soon as it is queued, and the host
        reads outputs only once `IN_FLIGHT_BYTES` of inputs and outputs are pending (and at the end),
        so the device never waits on the host between batches; inputs larger than
        memory can be passed as an iterator (or a memory-mapped array).
        """
        total = len(images) if isinstance(images, np.ndarray) else None
        parts: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        pending: collections.deque = collections.deque()  # dispatched: (outputs per group, real rows, bytes)
        pending_bytes = 0

        def collect(bar) -> None:
            nonlocal pending_bytes
            outputs, rows, size = pending.popleft()
            for group, out in zip(self.groups, outputs):
                for model_id, probs in group.split([np.asarray(o) for o in out], rows).items():
                    parts[model_id].append(probs)
            pending_bytes -= size
            bar.update(rows)

        with tqdm(total=total, desc=progress, disable=progress is None, leave=False, unit="img") as bar:
            for batch, chunks in self.pieces(images):  # lazily: inputs may not fit in memory
                placed = self.place(pad_rows(batch, self.batch_size * chunks))
                outputs = [g.run(placed, chunks) for g in self.groups]
                for out in outputs:
                    for o in out:
                        o.copy_to_host_async()
                size = placed.nbytes + sum(o.nbytes for out in outputs for o in out)  # inputs live until used
                pending.append((outputs, len(batch), size))
                pending_bytes += size
                while len(pending) > 1 and pending_bytes > IN_FLIGHT_BYTES:
                    collect(bar)
            while pending:
                collect(bar)
        return {
            m.id: np.concatenate(parts[m.id]) if parts[m.id] else np.zeros((0, h), np.float32)
            for g in self.groups
            for m, h in zip(g.members, g.heads)
        }

    def pieces(self, images: np.ndarray | Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, int]]:
        """`images` as (rows, batches) to run, each piece one dispatch: whole chunks of `chunk_rows`, and a short
        last chunk cut into power-of-two numbers of batches (few programs to compile, little padding)."""
        for rows in _rebatch(images, self.batch_size * self.chunks):
            batches = -(-len(rows) // self.batch_size)
            while batches:
                take = min(self.chunks, 1 << (batches.bit_length() - 1))
                yield rows[: take * self.batch_size], take
                rows, batches = rows[take * self.batch_size :], batches - take


def stack_pieces(members: list) -> list[list]:
    """`members` cut into runs of power-of-two lengths, longest first (11 models: 8, 2, 1)."""
    pieces = []
    while members:
        take = 1 << (len(members).bit_length() - 1)
        pieces.append(members[:take])
        members = members[take:]
    return pieces


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
    model: nnx.Module, input_spec: dict, images: np.ndarray, batch_size: int = BATCH_SIZE, dtype: str = "float32"
) -> np.ndarray:
    """Probabilities [N, H] of one model (a one-model engine)."""
    engine = Engine([Member("model", model, input_spec)], batch_size=min(batch_size, max(len(images), 1)), dtype=dtype)
    return engine.probabilities(images)["model"]


_features_program = jax.jit(features, static_argnums=(0, 1))


def model_features(model: nnx.Module, input_spec: dict, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
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
    if (backbone := entry.backbone) and backbone not in backbones:
        backbones[backbone] = hub.load_backbone(backbone)
    return Member(model_id, hub.load_model(model_id), entry.input_spec, backbone)


def hub_members(hub, model_ids: list[str]) -> tuple[list[Member], dict[str, nnx.Module]]:
    """Members for hub models (loading each checkpoint) and the backbones they share."""
    backbones: dict[str, nnx.Module] = {}
    return [hub_member(hub, i, backbones) for i in model_ids], backbones


def from_hub(hub, model_ids: list[str], **options) -> Engine:
    """An engine over hub models."""
    return Engine(*hub_members(hub, model_ids), **options)
