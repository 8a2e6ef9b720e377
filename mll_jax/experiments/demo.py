"""The demo: build the hub, label it, then solve the suite with MLL and every baseline (method.md §4).

Every seed-dependent method (MLL, patch only, f1-top-k, random) is run once per
selection seed; summaries carry the mean and standard error over seeds.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mll_jax import data, engine
from mll_jax.classifier import reuse, scores_from_probabilities
from mll_jax.concepts import task as task_lib
from mll_jax.configs import suite
from mll_jax.data import store as store_lib
from mll_jax.experiments import baselines
from mll_jax.hub import zoo
from mll_jax.hub.hub import Hub
from mll_jax.labeling import labels as labeling
from mll_jax.selection.candidates import candidates
from mll_jax.selection.selecting import fixed_selection, select_many
from mll_jax.selection.types import Selection

METHODS = ("mll", "oracle", "patch_only", "f1_topk", "declared", "random")
SEED_FREE = ("oracle", "declared")  # draw nothing at random: measured once, whatever the seed
SEEDS = (0, 1, 2, 3, 4)
NOISE = 2.0  # a difference is larger than the noise beyond this many standard errors


def accuracy(scores, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(scores).argmax(1) == labels))


def evaluation_data(hub: Hub, split: str) -> data.Dataset:
    """The images a suite is scored on: the test split (reported results) or the development split (design)."""
    if split == "test":
        return data.load(hub.store_spec.source, "test")
    if split == "dev":
        return store_lib.development(hub.store_spec)
    raise ValueError(f"unknown split {split!r}; use 'test' (reported results) or 'dev' (design choices)")


def task_items(hub: Hub, names, dataset: data.Dataset) -> tuple[list, np.ndarray, np.ndarray]:
    """A task's classes, which items of `dataset` belong to them (a mask), and those items' class indices."""
    classes = task_lib.resolve(hub.sdag, names)
    y = task_lib.targets(np.array(dataset.synsets)[dataset.labels], classes)
    return classes, y >= 0, y[y >= 0]


def answerable(hub: Hub, tasks) -> tuple[list, list[dict]]:
    """`tasks` split into those whose names all resolve, and the rest with the reason (reported, not dropped)."""
    ok, unanswered = [], []
    for names in tasks:
        try:
            task_lib.resolve(hub.sdag, names)
            ok.append(names)
        except task_lib.TaskError as e:
            unanswered.append({"classes": list(names), "error": str(e)})
    return ok, unanswered


def reused_scores(hub: Hub, sel: Selection, images: np.ndarray, probs: dict) -> np.ndarray:
    """A selection's scores as users get them: `reuse(hub, sel)` run on the images."""
    return reuse(hub, sel)(images)


def cached_scores(hub: Hub, sel: Selection, images: np.ndarray, probs: dict) -> np.ndarray:
    """The same scores from every model's probabilities on those images, computed once (`growth` scores
    thousands of selections on one test set)."""
    return scores_from_probabilities(sel, probs)


def evaluate_suite(
    hub: Hub,
    tasks,
    dataset: data.Dataset,
    probs: dict,
    seconds: dict,
    seeds=(0,),
    methods=METHODS,
    scores=reused_scores,
) -> list[dict]:
    """`evaluate_task` over `tasks` for each selection seed (selections batched per seed); seeds merged per task."""
    runs = []
    for i, seed in enumerate(tqdm(seeds, desc="selection seeds", disable=len(seeds) == 1)):
        clock = time.perf_counter()
        selections = select_many(hub, [list(t) for t in tasks], seed=seed, progress=i == 0)
        seconds["select"] += time.perf_counter() - clock
        todo = methods if i == 0 else tuple(m for m in methods if m not in SEED_FREE)
        runs.append(
            [
                evaluate_task(hub, sel, dataset, probs, seconds, seed, todo, scores)
                for sel in tqdm(selections, desc="tasks", leave=False)
            ]
        )
    merged = []
    for first, *others in zip(*runs):
        by_seed = {
            m: [first["accuracy"][m]] + [o["accuracy"].get(m, first["accuracy"][m]) for o in others] for m in methods
        }
        merged.append(first | {"accuracy": {m: float(np.mean(v)) for m, v in by_seed.items()}, "by_seed": by_seed})
    return merged


def evaluate_task(
    hub: Hub,
    sel: Selection,
    dataset: data.Dataset,
    probs: dict,
    seconds: dict,
    seed: int = 0,
    methods=METHODS,
    scores=reused_scores,
) -> dict:
    """Accuracy of each of `methods` on `dataset`'s images of `sel`'s task, and the task's expert coverage.

    `scores(hub, selection, images, probs)` gives a selection's logits (MLL, patch only, random)."""
    classes, keep, y = task_items(hub, sel.classes, dataset)
    images, probs = dataset.images[keep], {m: p[keep] for m, p in probs.items()}
    acc, out = {}, {}

    clock = time.perf_counter()
    if "mll" in methods:
        acc["mll"] = accuracy(scores(hub, sel, images, probs), y)
    seconds["reuse"] += time.perf_counter() - clock

    clock = time.perf_counter()
    cands = candidates(hub, classes)
    if "patch_only" in methods:
        patch = baselines.patch_candidates(hub, classes)
        patch_sel = fixed_selection(hub, classes, patch, [0] * len(classes), seed)
        acc["patch_only"] = accuracy(scores(hub, patch_sel, images, probs), y)
    if "random" in methods:
        random_sel = fixed_selection(hub, classes, cands, baselines.random_pick(cands, seed), seed)
        acc["random"] = accuracy(scores(hub, random_sel, images, probs), y)
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
        oracle, record = baselines.oracle_model(hub, classes)  # restored once: scores and record
        acc["oracle"] = accuracy(baselines.logits(oracle, images), y)
        out["oracle"] = {k: v for k, v in record.items() if k != "checksum"}
        covering = {
            m: accuracy(baselines.class_probs(probs[m], heads, len(classes)), y)
            for m, heads in baselines.covering_experts(cands, hub.general_id).items()
        }
        best = max(covering, key=covering.get) if covering else None
        out["best_covering_expert"] = {"model": best, "accuracy": covering[best]} if best else None
        out["oracle_minus_best_covering"] = acc["oracle"] - covering[best] if best else None
    seconds["oracle"] += time.perf_counter() - clock
    return {
        "classes": list(sel.classes),
        "nodes": sel.nodes,
        "items": int(len(y)),
        "accuracy": {m: acc[m] for m in methods},
        "coverage": 1.0 - len(sel.uncovered) / len(classes),
        "selection": sel.to_json(),
        **out,
    }


def all_probabilities(hub: Hub, dataset: data.Dataset) -> dict[str, np.ndarray]:
    """Every model's probabilities on `dataset`'s images (the ensemble baselines read them)."""
    return engine.from_hub(hub, list(hub.entries)).probabilities(dataset.images, progress=f"{dataset.name} images")


def zero_shot(hub: Hub, dataset: data.Dataset) -> float:
    """The general model's accuracy over every store concept (10-way on Fashion-MNIST), from its concept heads."""
    entry = hub.entry(hub.general_id)
    heads = [entry["heads"].index(s) for s in hub.store.synsets]
    probs = engine.from_hub(hub, [hub.general_id]).probabilities(dataset.images)[hub.general_id]
    return accuracy(probs[:, heads], dataset.labels)  # the store's concepts are the dataset's classes


def regime(hub: Hub) -> str:
    """The regime of the hub's general model (`configs.general.REGIMES`): what it learnt the domain from."""
    provenance = hub.entry(hub.general_id)["provenance"]
    return {"captions": "paper", "store": "in-domain"}.get(provenance.get("data", "store"), "other")


def stderr(values) -> float:
    """Standard error of the mean (0 for a single value)."""
    values = np.asarray(values, float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def summarise(results: list[dict], methods=METHODS, noise: float = NOISE) -> dict:
    """Suite means per method over seeds, their standard errors, and MLL minus each baseline (paired by seed).

    A difference is `beyond_noise` when its mean exceeds `noise` standard errors
    of the per-seed differences.
    """
    per_seed = {m: np.mean([r["by_seed"][m] for r in results], axis=0) for m in methods}
    out = {
        "summary": {m: float(per_seed[m].mean()) for m in methods},
        "stderr": {m: stderr(per_seed[m]) for m in methods},
        "per_seed": {m: per_seed[m].tolist() for m in methods},
        "differences": {},
    }
    for m in methods:
        if m != "mll" and "mll" in methods:
            d = per_seed["mll"] - per_seed[m]
            mean, se = float(d.mean()), stderr(d)
            out["differences"][m] = {"mean": mean, "stderr": se, "beyond_noise": abs(mean) > noise * se}
    return out


def run(hub_path: Path, tasks=None, seeds=SEEDS, split: str = "test") -> dict:
    """The demo on `split`: the reported suite on the test split, or the development suite on the dev split."""
    tasks = suite.tasks(split) if tasks is None else tasks
    if len(seeds) < 1:
        raise ValueError("the demo needs at least one selection seed (--seeds 1 or more)")
    seconds: dict[str, float] = defaultdict(float)
    start = clock = time.perf_counter()
    hub = zoo.build(hub_path)
    seconds["hub"] = time.perf_counter() - clock

    clock = time.perf_counter()
    labeling.label(hub)
    seconds["label"] = time.perf_counter() - clock

    clock = time.perf_counter()
    dataset = evaluation_data(hub, split)
    probs = all_probabilities(hub, dataset)
    seconds["inference"] = time.perf_counter() - clock

    answered, unanswered = answerable(hub, tasks)
    results = evaluate_suite(hub, answered, dataset, probs, seconds, seeds)
    seconds["total"] = time.perf_counter() - start
    return {
        "split": split,
        "seeds": list(seeds),
        **summarise(results),
        "noise_rule": f"beyond_noise: |mean difference| > {NOISE} standard errors over selection seeds",
        "tasks": results,
        "unanswered": unanswered,
        "seconds": dict(seconds),
        "hub": {"path": str(hub_path), "experts": len(hub.ids("expert")), "general": hub.general_id},
        "general_regime": regime(hub),
        "general_zero_shot": zero_shot(hub, dataset),
        "mislabelled": [
            {"model": h.model, "head": h.head, "declared": h.declared, "measured": list(h.nodes)}
            for h in labeling.mislabel_report(hub)
        ],
    }


def table(result: dict) -> str:
    header = f"{'task':52s} " + " ".join(f"{m:>10s}" for m in METHODS) + f" {'oracle-best':>11s}"
    lines = [header, "-" * len(header)]
    for r in result["tasks"]:
        name = ", ".join(r["classes"])
        name = name if len(name) <= 52 else name[:49] + "..."
        gap = r.get("oracle_minus_best_covering")
        lines.append(
            f"{name:52s} "
            + " ".join(f"{r['accuracy'][m]:10.3f}" for m in METHODS)
            + (f" {gap:+11.3f}" if gap is not None else f" {'-':>11s}")
        )
    lines.append("-" * len(header))
    seeds = len(result["seeds"])
    lines.append(
        f"{'mean over ' + str(len(result['tasks'])) + ' tasks':52s} "
        + " ".join(f"{result['summary'][m]:10.3f}" for m in METHODS)
    )
    lines.append(
        f"{f'standard error over {seeds} seeds':52s} " + " ".join(f"{result['stderr'][m]:10.4f}" for m in METHODS)
    )
    lines.append("")
    for m, d in result["differences"].items():
        verdict = "larger than the noise" if d["beyond_noise"] else "within the noise"
        lines.append(f"MLL - {m}: {d['mean']:+.4f} +- {d['stderr']:.4f} ({verdict})")
    for u in result["unanswered"]:
        lines.append(f"unanswered: {', '.join(u['classes'])}: {u['error']}")
    lines.append("oracle-best: the oracle minus the best single expert that covers every class of the task")
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
    errors = [result["stderr"][m] for m in METHODS]
    bars = ax.bar(METHODS, values, yerr=errors, capsize=3, color=["tab:blue"] + ["tab:gray"] * (len(METHODS) - 1))
    ax.bar_label(bars, fmt="%.3f", padding=4)
    ax.set_ylim(min(values) - 0.1, 1.0)
    ax.set_ylabel(f"mean {result['split']} accuracy (bars: standard error over {len(result['seeds'])} seeds)")
    ax.set_title(f"Zero-shot accuracy over {len(result['tasks'])} Fashion-MNIST tasks")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
