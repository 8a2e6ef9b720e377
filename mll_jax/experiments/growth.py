"""Hub growth: zero-shot accuracy and coverage against the number of experts.

Nested hubs are grown from the full demo hub in several random orders: each step
adds the next experts (the general model is always present), labels only the new
models, and solves the demo suite with MLL, f1-top-k and patch-only. The oracle,
which does not depend on the hub, is one line.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mll_jax import data
from mll_jax.configs import suite
from mll_jax.experiments import baselines, demo
from mll_jax.hub.hub import Hub
from mll_jax.labeling import labels as labeling

METHODS = ("mll", "f1_topk", "patch_only")
log = logging.getLogger(__name__)


def copy_model(hub: Hub, source: Hub, model_id: str) -> None:
    """Add `source`'s model `model_id` to `hub` (checkpoint and entry; not its labels)."""
    entry = source.entry(model_id)
    backbone = entry.get("backbone")
    if backbone and backbone not in hub.backbones:
        b = source.backbones[backbone]
        model = source.load_backbone(backbone)
        hub.add_backbone(backbone, model, b["arch"], b["config"], b["input_spec"], b["provenance"])
    hub.add(
        model_id,
        source.load_model(model_id),
        entry["arch"],
        entry["config"],
        entry["heads"],
        entry["input_spec"],
        entry["role"],
        entry["provenance"],
        backbone,
    )


def default_sizes(num_experts: int) -> list[int]:
    """1, 2, 4, ... and every expert."""
    sizes = [1 << i for i in range(num_experts.bit_length()) if 1 << i < num_experts]
    return sizes + [num_experts]


def run(
    full: Hub,
    workdir: Path,
    sizes: list[int] | None = None,
    orders: int = 3,
    tasks=suite.DEMO_TASKS,
    seed: int = 0,
) -> dict:
    """Grow `orders` nested hubs under `workdir` to each of `sizes` experts; evaluate each."""
    experts = full.ids("expert")
    sizes = sorted(set(sizes or default_sizes(len(experts))))
    if not sizes or sizes[0] < 1 or sizes[-1] > len(experts):
        raise ValueError(f"hub sizes must lie in 1..{len(experts)} (the full hub's experts), got {sizes}")
    if orders < 1:
        raise ValueError(f"orders must be at least 1, got {orders}")
    if full.general_id is None:
        raise ValueError(f"hub {full.path} has no general model; growth hubs need one to patch uncovered classes")
    test = data.load(full.store_spec.source, "test")
    test_probs = demo.all_probabilities(full, test)
    tasks, unanswered = demo.answerable(full, tasks)
    rng = np.random.default_rng(seed)
    permutations = [list(rng.permutation(experts)) for _ in range(orders)]
    rows = []
    bar = tqdm(total=orders * len(sizes), desc="growing hubs")
    for o, order in enumerate(permutations):
        path = Path(workdir) / f"order-{o}"
        if path.exists():
            shutil.rmtree(path)  # a previous run's hub: start the nesting afresh
        hub = Hub.create(path, full.store_spec)
        copy_model(hub, full, full.general_id)
        for size in sizes:
            for model_id in order[len(hub.ids("expert")) : size]:
                copy_model(hub, full, model_id)
            labelled = labeling.label(hub, progress=False)
            seconds: dict[str, float] = defaultdict(float)
            results = demo.evaluate_suite(hub, tasks, test, test_probs, seconds, (seed,), METHODS)
            rows.append(
                {
                    "order": o,
                    "size": size,
                    "experts": order[:size],
                    "labelled_now": labelled,
                    "accuracy": {m: float(np.mean([r["accuracy"][m] for r in results])) for m in METHODS},
                    "coverage": float(np.mean([r["coverage"] for r in results])),
                    "seconds": seconds,
                }
            )
            log.info("order %d, %d experts: %s", o, size, rows[-1]["accuracy"])
            bar.update()
    bar.close()
    oracle = []  # independent of the hub: one per task, trained once (or read from the oracle cache)
    for names in tqdm(tasks, desc="oracle"):
        classes, keep, y = demo.task_items(full, names, test)
        oracle.append(demo.accuracy(baselines.oracle_logits(full, classes, test.images[keep]), y))
    return {
        "sizes": sizes,
        "orders": permutations,
        "tasks": [list(t) for t in tasks],
        "unanswered": unanswered,
        "oracle": float(np.mean(oracle)),
        "oracle_by_task": oracle,
        "rows": rows,
        "summary": summarise(rows, sizes),
    }


def summarise(rows: list[dict], sizes: list[int]) -> list[dict]:
    """Per hub size: mean, standard error, min and max over orders of each method's accuracy and of coverage."""
    out = []
    for size in sizes:
        at = [r for r in rows if r["size"] == size]
        entry = {"size": size}
        for name, values in [(m, [r["accuracy"][m] for r in at]) for m in METHODS] + [
            ("coverage", [r["coverage"] for r in at])
        ]:
            entry[name] = {
                "mean": float(np.mean(values)),
                "stderr": demo.stderr(values),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }
        out.append(entry)
    return out


def table(result: dict) -> str:
    header = f"{'experts':>7s} " + " ".join(f"{m:>16s}" for m in (*METHODS, "coverage"))
    lines = [header, "-" * len(header)]
    for s in result["summary"]:
        cells = [f"{s[m]['mean']:.3f}+-{s[m]['stderr']:.3f}" for m in (*METHODS, "coverage")]
        lines.append(f"{s['size']:7d} " + " ".join(f"{c:>16s}" for c in cells))
    lines.append(
        f"oracle (independent of the hub): {result['oracle']:.3f}; mean +- standard error over "
        f"{len(result['orders'])} orders"
    )
    return "\n".join(lines)


def tick_labels(sizes: list[int]) -> list[str]:
    """Labels for log2-spaced ticks; a size too close to the last one (16 before 17) gets none."""
    labels = [str(s) if i + 1 == len(sizes) or sizes[i + 1] / s > 1.25 else "" for i, s in enumerate(sizes)]
    return labels


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    sizes = [s["size"] for s in summary]
    fig, (acc_ax, cov_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    colors = {"mll": "tab:blue", "f1_topk": "tab:orange", "patch_only": "tab:green"}
    for m in METHODS:
        mean = [s[m]["mean"] for s in summary]
        acc_ax.plot(sizes, mean, marker="o", color=colors[m], label=m)
        acc_ax.fill_between(
            sizes, [s[m]["min"] for s in summary], [s[m]["max"] for s in summary], color=colors[m], alpha=0.15
        )
    acc_ax.axhline(result["oracle"], color="black", linestyle="--", linewidth=1, label="oracle")
    acc_ax.set_xscale("log", base=2)
    acc_ax.set_xticks(sizes, tick_labels(sizes))
    acc_ax.set_xlabel("experts in the hub")
    acc_ax.set_ylabel(f"mean test accuracy ({len(result['tasks'])} tasks)")
    acc_ax.set_title("Mean test accuracy against hub size")
    acc_ax.legend(loc="lower right")
    acc_ax.grid(alpha=0.3)
    cov = [s["coverage"]["mean"] for s in summary]
    cov_ax.plot(sizes, cov, marker="s", color="tab:purple")
    cov_ax.fill_between(
        sizes,
        [s["coverage"]["min"] for s in summary],
        [s["coverage"]["max"] for s in summary],
        color="tab:purple",
        alpha=0.15,
    )
    cov_ax.set_xscale("log", base=2)
    cov_ax.set_xticks(sizes, tick_labels(sizes))
    cov_ax.set_ylim(0, 1.02)
    cov_ax.set_xlabel("experts in the hub")
    cov_ax.set_ylabel("task classes covered by an expert")
    cov_ax.set_title("Coverage")
    cov_ax.grid(alpha=0.3)
    fig.suptitle(f"Shaded: min to max over {len(result['orders'])} random orders of adding experts", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
