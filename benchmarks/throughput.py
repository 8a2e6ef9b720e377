"""Inference throughput: the engine vs the plain JAX loop vs a PyTorch reference loop.

    python benchmarks/throughput.py [--experts 1 4 16 64] [--batches 32 512] [--json out/throughput.json]

Hubs of random-initialised experts in the demo hub's architectures: half stand
alone (MLPs and CNNs of five shapes), half are heads of shared-backbone families
(up to 8 heads per backbone). All runs see the same uint8 images, in one process.

- plain: one jitted call per expert and batch, a family head running its own
  backbone (what a JAX user writes first);
- engine: `mll_jax.engine.Engine` (grouping, measured strategies, shared backbones);
- torch: the loop of published MLL code (per model, `torch.no_grad()`, batch 32),
  same architectures and weights; its outputs are checked against the engine's;
- roofline: the engine's useful FLOP/s (XLA's count of each model's forward,
  a family's backbone once) against a dense matmul measured in the same run;
- labelling: probabilities for the whole demo hub on the sample store, one jitted
  call per model vs the engine (needs a built hub: `make demo`);
- precision: bfloat16 against float32 on the demo hub (probabilities, head labels,
  selections on the demo suite).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax import engine, labeling, nets, paths
from mll_jax.configs import demo_hub
from mll_jax.configs.engine import BATCH_SIZE
from mll_jax.data.preprocess import preprocess, spec_key
from mll_jax.engine import forward, runner

SPEC = demo_hub.INPUT_SPEC
STANDALONE = [
    ("mlp", demo_hub.MLP),
    ("cnn", demo_hub.CNN),
    ("mlp", demo_hub.SMALL_MLP),
    ("cnn", demo_hub.SMALL_CNN),
    ("cnn", demo_hub.LARGE_CNN),
]
FAMILY_SIZE = 8


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


class OnBackbone(nnx.Module):
    """A family head with its own copy of the backbone (how a plain loop runs it)."""

    def __init__(self, backbone: nnx.Module, heads: nnx.Module):
        self.backbone, self.heads = backbone, heads

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.heads(self.backbone.features(x))


def whole_model(member: engine.Member, backbones: dict[str, nnx.Module]) -> nnx.Module:
    """`member` as one model of preprocessed inputs (a family head runs its own backbone)."""
    return member.model if member.backbone is None else OnBackbone(backbones[member.backbone], member.model)


def plain_loop(members, backbones, batch_size: int):
    """One jitted softmax forward per model; returns run(images) -> {id: probs}."""
    spec = spec_key(SPEC)
    programs = {}
    for m in members:
        fn = whole_model(m, backbones)
        programs[m.id] = jax.jit(lambda x, f=fn: jax.nn.softmax(f(preprocess(x, dict(spec))), -1))

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        parts = {i: [] for i in programs}
        for start in range(0, len(images), batch_size):
            batch = jnp.asarray(runner.pad_rows(images[start : start + batch_size], batch_size))
            outs = {i: p(batch) for i, p in programs.items()}
            for i, o in outs.items():
                parts[i].append(np.asarray(o)[: min(batch_size, len(images) - start)])
        return {i: np.concatenate(p) for i, p in parts.items()}

    return run


def best_of(fn, repeats: int) -> float:
    return side_by_side([fn], repeats)[0]


def side_by_side(fns: list, repeats: int) -> list[float]:
    """Best wall time of each function, run in turn `repeats` times (so load changes hit all alike)."""
    for fn in fns:
        jax.block_until_ready(fn())  # compile / warm up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def forward_flops(fn, shape) -> float:
    """XLA's FLOP count of `fn` on one input of `shape` (float32)."""
    cost = jax.jit(fn).lower(jnp.zeros((1, *shape), jnp.float32)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0))


def useful_flops(members, backbones) -> float:
    """FLOPs per image of the work the engine does: each model once, each backbone once."""
    shape = tuple(SPEC["shape"])
    total = sum(forward_flops(lambda x, b=b: b.features(x), shape) for b in backbones.values())
    for m in members:
        if m.backbone is None:
            total += forward_flops(m.model, shape)
        else:
            total += forward_flops(m.model, (backbones[m.backbone].head.in_features,))
    return total


def matmul_peak(dtype=jnp.float32) -> float:
    """Dense matmul FLOP/s measured now (the roofline's ceiling for this run)."""
    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / best_of(lambda: f(a), 5)


def torch_reference(members, backbones, images: np.ndarray):
    """The published-style loop; returns (seconds, probabilities) or None without torch."""
    try:
        import torch
        import torch_reference as ref
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count())
    modules = [
        ref.to_torch(m.model) if m.backbone is None else ref.to_torch_on_backbone(backbones[m.backbone], m.model)
        for m in members
    ]
    ref.reference_probabilities(modules, images[:64], SPEC["mean"], SPEC["std"])  # warm up
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        probs = ref.reference_probabilities(modules, images, SPEC["mean"], SPEC["std"])
        best = min(best, time.perf_counter() - start)
    return best, dict(zip([m.id for m in members], probs))


def throughput(experts: list[int], batches: list[int], images: np.ndarray, repeats: int, torch_limit: int):
    peak = matmul_peak()
    rows = []
    for count in experts:
        members, backbones = synthetic_hub(count)
        flops = useful_flops(members, backbones)
        reference = torch_reference(members, backbones, images) if count <= torch_limit else None
        for batch in batches:
            loop = plain_loop(members, backbones, batch)
            start = time.perf_counter()
            runner = engine.Engine(members, backbones, batch_size=batch)
            setup = time.perf_counter() - start
            engine_s, loop_s = side_by_side(
                [lambda r=runner: r.probabilities(images), lambda f=loop: f(images)], repeats
            )
            ours = runner.probabilities(images)
            plain = loop(images)
            agree = max(float(np.abs(ours[i] - plain[i]).max()) for i in ours)
            row = {
                "experts": count,
                "batch": batch,
                "strategies": ",".join(sorted({g.layout.strategy for g in runner.groups})),
                "engine_setup_s": setup,
                "engine_img_per_s": len(images) / engine_s,
                "plain_img_per_s": len(images) / loop_s,
                "engine_vs_plain": loop_s / engine_s,
                "max_abs_diff_plain": agree,
                "engine_gflop_per_s": flops * len(images) / engine_s / 1e9,
                "roofline_fraction": flops * len(images) / engine_s / peak,
            }
            if reference is not None:
                torch_s, torch_probs = reference
                row["torch_img_per_s"] = len(images) / torch_s
                row["engine_vs_torch"] = torch_s / engine_s
                row["max_abs_diff_torch"] = max(float(np.abs(ours[i] - torch_probs[i]).max()) for i in ours)
            rows.append(row)
            print(_line(row), flush=True)
    return rows, peak


_forward = jax.jit(forward.forward, static_argnums=(0, 1))


def plain_labelling(hub, ids: list[str], images: np.ndarray, batch_size: int = BATCH_SIZE) -> dict[str, np.ndarray]:
    """Labelling as a plain loop: load each model, one jitted call per model and batch."""
    spec = spec_key(SPEC)
    out = {}
    for model_id in ids:
        backbones: dict[str, nnx.Module] = {}  # each model loads its own backbone, as a plain loop would
        member = engine.hub_member(hub, model_id, backbones)
        graphdef, state = nnx.split(whole_model(member, backbones))
        parts = [
            np.asarray(
                _forward(graphdef, spec, state, jnp.asarray(runner.pad_rows(images[s : s + batch_size], batch_size)))
            )
            for s in range(0, len(images), batch_size)
        ]
        out[model_id] = np.concatenate(parts)[: len(images)]
    return out


def labelling(hub_path: Path, repeats: int) -> dict | None:
    """Store probabilities for every demo-hub model, checkpoints loaded: plain loop vs the engine."""
    from mll_jax.hub import Hub

    try:
        hub = Hub.open(hub_path)
    except FileNotFoundError:
        print(f"labelling: skipped, no hub at {hub_path} (run `make demo`)")
        return None
    images, ids = hub.store.images, list(hub.entries)
    groups = labeling.labels.groups(hub, ids)
    engine_s, loop_s = side_by_side(
        [
            lambda: [labeling.labels.compute(hub, g, progress=False) for g in groups],
            lambda: plain_labelling(hub, ids, images),
        ],
        repeats,
    )
    result = {"models": len(ids), "images": len(images), "plain_s": loop_s, "engine_s": engine_s}
    result["engine_vs_plain"] = loop_s / engine_s
    print(f"labelling {len(ids)} models on {len(images)} store images: plain {loop_s:.2f} s, engine {engine_s:.2f} s")
    return result


def _picks(sel) -> list:
    return [[(c.model, c.heads) for c in choices] for choices in sel.choices]


def precision(hub_path: Path) -> dict | None:
    """bfloat16 vs float32 on the demo hub: probabilities, head labels and selections."""
    import mll_jax as mll
    from mll_jax.configs import suite
    from mll_jax.hub import Hub

    try:
        hub = Hub.open(hub_path)
    except FileNotFoundError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        copy = Hub.open(shutil.copytree(hub.path, Path(tmp) / "hub"))
        labeling.label(copy, force=True, dtype="bfloat16", progress=False)
        diffs = [np.abs(copy.labels(i)["probs"].astype(np.float32) - hub.labels(i)["probs"]) for i in hub.entries]
        same_labels = sum(
            [h.concepts for h in labeling.head_labels(copy, i)] == [h.concepts for h in labeling.head_labels(hub, i)]
            for i in hub.ids("expert")
        )
        tasks = [list(t) for t in suite.DEMO_TASKS]
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
    ("experts", "{}"),
    ("batch", "{}"),
    ("strategies", "{}"),
    ("engine_img_per_s", "{:.0f}"),
    ("plain_img_per_s", "{:.0f}"),
    ("engine_vs_plain", "{:.2f}"),
    ("torch_img_per_s", "{:.0f}"),
    ("engine_vs_torch", "{:.2f}"),
    ("engine_gflop_per_s", "{:.1f}"),
    ("roofline_fraction", "{:.3f}"),
]


def _line(row: dict) -> str:
    return " | ".join(fmt.format(row[k]) if k in row else "-" for k, fmt in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experts", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, BATCH_SIZE])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-limit", type=int, default=64, help="run the torch loop up to this many experts")
    parser.add_argument("--hub", default=str(paths.default_hub()))
    parser.add_argument("--skip-hub", action="store_true", help="skip the labelling and precision sections")
    parser.add_argument("--json", default="out/throughput.json")
    args = parser.parse_args()
    paths.enable_compile_cache()
    images = np.random.default_rng(0).integers(0, 256, (args.images, *SPEC["shape"]), dtype=np.uint8)
    device = jax.local_devices()[0]
    print(f"backend {device.platform} ({device.device_kind}), {jax.local_device_count()} device(s)")
    print(" | ".join(k for k, _ in COLUMNS))
    rows, peak = throughput(args.experts, args.batches, images, args.repeats, args.torch_limit)
    print(f"dense matmul peak measured in this run: {peak / 1e9:.1f} GFLOP/s")
    result = {"backend": f"{device.platform}:{device.device_kind}", "matmul_gflop_per_s": peak / 1e9, "rows": rows}
    if not args.skip_hub:
        result["labelling"] = labelling(Path(args.hub), args.repeats)
        result["precision"] = precision(Path(args.hub))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
