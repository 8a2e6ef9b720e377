"""The demo: build the hub, label it, then solve the suite with MLL and every baseline (method.md §4)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mll_jax import data, engine
from mll_jax.classifier import reuse
from mll_jax.concepts import task as task_lib
from mll_jax.configs import suite
from mll_jax.experiments import baselines
from mll_jax.hub import zoo
from mll_jax.hub.hub import Hub
from mll_jax.labeling import labels as labeling
from mll_jax.selection.candidates import candidates
from mll_jax.selection.selecting import fixed_selection, select_many
from mll_jax.selection.types import Selection

METHODS = ("mll", "oracle", "patch_only", "f1_topk", "declared", "random")


def accuracy(scores, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(scores).argmax(1) == labels))


def task_items(hub: Hub, names, test: data.Dataset) -> tuple[list, np.ndarray, np.ndarray]:
    """A task's classes, which test items belong to them (a mask), and those items' class indices."""
    classes = task_lib.resolve(hub.sdag, names)
    y = task_lib.targets(np.array(test.synsets)[test.labels], classes)
    return classes, y >= 0, y[y >= 0]


def evaluate_suite(
    hub: Hub, tasks, test: data.Dataset, test_probs: dict, seconds: dict, seed: int = 0, methods=METHODS
) -> list[dict]:
    """`evaluate_task` over `tasks`, their selections made in one batched call."""
    clock = time.perf_counter()
    selections = select_many(hub, [list(t) for t in tasks], seed=seed, progress=True)
    seconds["select"] += time.perf_counter() - clock
    return [evaluate_task(hub, sel, test, test_probs, seconds, seed, methods) for sel in tqdm(selections, desc="tasks")]


def evaluate_task(
    hub: Hub,
    sel: Selection,
    test: data.Dataset,
    test_probs: dict,
    seconds: dict,
    seed: int = 0,
    methods=METHODS,
) -> dict:
    """Accuracy of each of `methods` on the test images of `sel`'s task, and the task's expert coverage."""
    classes, keep, y = task_items(hub, sel.classes, test)
    images, probs = test.images[keep], {m: p[keep] for m, p in test_probs.items()}
    acc = {}

    clock = time.perf_counter()
    if "mll" in methods:
        acc["mll"] = accuracy(reuse(hub, sel)(images), y)
    seconds["reuse"] += time.perf_counter() - clock

    clock = time.perf_counter()
    cands = candidates(hub, classes)
    if "patch_only" in methods:
        patch = baselines.patch_candidates(hub, classes)
        acc["patch_only"] = accuracy(
            reuse(hub, fixed_selection(hub, classes, patch, [0] * len(classes)))(images), y
        )
    if "random" in methods:
        random_sel = fixed_selection(hub, classes, cands, baselines.random_pick(cands, seed))
        acc["random"] = accuracy(reuse(hub, random_sel)(images), y)
    if "f1_topk" in methods:
        members = baselines.f1_topk_members(hub, classes, cands, seed=seed)
        acc["f1_topk"] = accuracy(baselines.ensemble(probs, cands, members, entropy_weighted=True), y)
    if "declared" in methods:
        declared = baselines.declared_candidates(hub, classes)
        acc["declared"] = accuracy(
            baselines.ensemble(probs, declared, [[c.model for c in cs] for cs in declared], False), y
        )
    seconds["baselines"] += time.perf_counter() - clock

    clock = time.perf_counter()
    if "oracle" in methods:
        acc["oracle"] = accuracy(baselines.oracle_logits(hub, classes, images), y)
    seconds["oracle"] += time.perf_counter() - clock
    return {
        "classes": list(sel.classes),
        "nodes": sel.nodes,
        "test_items": int(len(y)),
        "accuracy": {m: acc[m] for m in methods},
        "coverage": 1.0 - len(sel.uncovered) / len(classes),
        "selection": sel.to_json(),
    }


def test_probabilities(hub: Hub, test: data.Dataset) -> dict[str, np.ndarray]:
    """Every model's probabilities on the test images (the ensemble baselines read them)."""
    return engine.from_hub(hub, list(hub.entries)).probabilities(test.images, progress="test images")


def run(hub_path: Path, tasks=suite.DEMO_TASKS, seed: int = 0) -> dict:
    seconds: dict[str, float] = defaultdict(float)
    start = clock = time.perf_counter()
    hub = zoo.build(hub_path)
    seconds["hub"] = time.perf_counter() - clock

    clock = time.perf_counter()
    labeling.label(hub)
    seconds["label"] = time.perf_counter() - clock

    clock = time.perf_counter()
    test = data.load(hub.store_spec.source, "test")
    test_probs = test_probabilities(hub, test)
    seconds["test_inference"] = time.perf_counter() - clock

    results = evaluate_suite(hub, tasks, test, test_probs, seconds, seed)
    summary = {m: float(np.mean([r["accuracy"][m] for r in results])) for m in METHODS}
    seconds["total"] = time.perf_counter() - start
    return {
        "summary": summary,
        "tasks": results,
        "seconds": dict(seconds),
        "hub": {"path": str(hub_path), "experts": len(hub.ids("expert")), "general": hub.general_id},
        "mislabelled": [
            {"model": h.model, "head": h.head, "declared": h.declared, "measured": list(h.nodes)}
            for h in labeling.mislabel_report(hub)
        ],
    }


def table(result: dict) -> str:
    header = f"{'task':52s} " + " ".join(f"{m:>10s}" for m in METHODS)
    lines = [header, "-" * len(header)]
    for r in result["tasks"]:
        name = ", ".join(r["classes"])
        name = name if len(name) <= 52 else name[:49] + "..."
        lines.append(f"{name:52s} " + " ".join(f"{r['accuracy'][m]:10.3f}" for m in METHODS))
    lines.append("-" * len(header))
    lines.append(
        f"{'mean over ' + str(len(result['tasks'])) + ' tasks':52s} "
        + " ".join(f"{result['summary'][m]:10.3f}" for m in METHODS)
    )
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result["seconds"].items()))
    for h in result["mislabelled"]:
        lines.append(
            f"mislabelled head: {h['model']} head {h['head']} declared {h['declared']!r}, measured {h['measured']}"
        )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    values = [result["summary"][m] for m in METHODS]
    bars = ax.bar(METHODS, values, color=["tab:blue"] + ["tab:gray"] * (len(METHODS) - 1))
    ax.bar_label(bars, fmt="%.3f")
    ax.set_ylim(min(values) - 0.1, 1.0)
    ax.set_ylabel("mean test accuracy")
    ax.set_title(f"Zero-shot accuracy over {len(result['tasks'])} Fashion-MNIST tasks")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
