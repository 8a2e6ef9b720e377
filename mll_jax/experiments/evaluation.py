"""Scoring MLL and the baselines on a suite of tasks (method.md §4): what the demo, growth and the benchmarks share.

Every seed-dependent method (MLL, patch only, f1-top-k, random) is run once per
selection seed; a task's result keeps every seed's accuracy and their mean, and
each call returns the seconds it spent per stage beside its results.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from mll_jax import data, engine
from mll_jax.classifier import reuse, scores_from_probabilities
from mll_jax.concepts import task as task_lib
from mll_jax.configs.evaluation import NOISE
from mll_jax.configs.selection import SelectionConfig
from mll_jax.data import store as store_lib
from mll_jax.experiments import baselines
from mll_jax.hub import Hub
from mll_jax.selection import by_name
from mll_jax.selection.candidates import candidates
from mll_jax.selection.selecting import select_many
from mll_jax.selection.types import Selection

__all__ = [
    "METHODS",
    "SEED_FREE",
    "accuracy",
    "all_probabilities",
    "answerable",
    "evaluate_by_name",
    "cached_scores",
    "difference_lines",
    "evaluate_suite",
    "evaluate_task",
    "evaluation_data",
    "regime",
    "reused_scores",
    "stderr",
    "summarise",
    "task_items",
    "zero_shot",
]

METHODS = ("mll", *baselines.BASELINES)  # mll, oracle, patch_only, f1_top1, f1_top3, declared, random
SEED_FREE = tuple(m for m, b in baselines.BASELINES.items() if not b.uses_seed)  # measured once, whatever the seed
# The baselines choose among every candidate a class has, as they did before selection had a cap.
BASELINE_CANDIDATES = SelectionConfig(max_candidates=None)

Scores = Callable[[Hub, Selection, np.ndarray, dict], np.ndarray]
accuracy = baselines.accuracy


def evaluation_data(hub: Hub, split: str) -> data.Dataset:
    """The images a suite is scored on: the test split (reported results) or the development split (design)."""
    if split == "test":
        return store_lib.test(hub.store_spec)
    if split == "dev":
        return store_lib.development(hub.store_spec)
    raise ValueError(f"unknown split {split!r}; use 'test' (reported results) or 'dev' (design choices)")


def task_items(
    hub: Hub, names, dataset: data.Dataset, truth: dict[str, str] | None = None
) -> tuple[list, np.ndarray, np.ndarray]:
    """A task's classes, which items of `dataset` belong to them (a mask), and those items' class indices. A class
    by name (no SDAG node matches it) takes its items from the node `truth` gives its name (the suite's answer key,
    `configs.suite.OUTSIDE_WORDNET`), less the other classes' concepts."""
    classes = task_lib.resolve(hub.sdag, names)
    for k, cls in enumerate(classes):
        if cls.by_name:
            if not truth or cls.name not in truth:
                raise ValueError(f"class {cls.name!r} matches no SDAG node; give its true node in `truth` to score it")
            others = frozenset().union(*(c.concepts for c in classes if c is not cls))
            classes[k] = dataclasses.replace(cls, concepts=hub.sdag.concepts_under(truth[cls.name]) - others)
    y = task_lib.targets(np.array(dataset.synsets)[dataset.labels], classes)
    return classes, y >= 0, y[y >= 0]


def answerable(hub: Hub, tasks) -> tuple[list, list[dict]]:
    """`tasks` split into those whose names all match SDAG nodes, which every method answers, and the rest
    (reported, not dropped): with the classes MLL answers by name (`by_name`), or with the error."""
    ok, rest = [], []
    for names in tasks:
        try:
            named = [c.name for c in task_lib.resolve(hub.sdag, names) if c.by_name]
        except task_lib.TaskError as e:
            rest.append({"classes": list(names), "error": str(e)})
            continue
        if named:
            rest.append({"classes": list(names), "by_name": named})
        else:
            ok.append(names)
    return ok, rest


def evaluate_by_name(hub: Hub, tasks, dataset: data.Dataset, truth: dict[str, str], seeds=(0,)) -> list[dict]:
    """Tasks with classes by name: MLL's accuracy (`reuse`, its mean over selection seeds) and the general model's
    alone (its text heads on every class: node heads for a matched class, name heads for the rest). The recipe
    baselines need node samples of every class, which a class by name lacks."""
    runs = [select_many(hub, [list(t) for t in tasks], seed=seed) for seed in seeds]
    results = []
    for t, names in enumerate(tasks):
        _, keep, y = task_items(hub, names, dataset, truth)
        images, sel = dataset.images[keep], runs[0][t]
        general = by_name.TextHeads(hub, sel.text_model, sel.classes, sel.concepts)
        mll = [accuracy(reuse(hub, run[t])(images), y) for run in runs]
        results.append(
            {
                "classes": list(names),
                "by_name": sel.by_name,
                "close": sel.close,
                "items": int(len(y)),
                "accuracy": {"mll": float(np.mean(mll)), "general": accuracy(general(images), y)},
                "by_seed": {"mll": mll},
                "selection": sel.to_json(),
            }
        )
    return results


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
    seeds=(0,),
    methods=METHODS,
    scores: Scores = reused_scores,
    config: SelectionConfig = SelectionConfig(),
) -> tuple[list[dict], dict[str, float]]:
    """`evaluate_task` over `tasks` for each selection seed (selections batched per seed, by `config`), seeds
    merged per task; and the seconds spent per stage."""
    seconds: dict[str, float] = defaultdict(float)
    runs = []
    for i, seed in enumerate(tqdm(seeds, desc="selection seeds", disable=len(seeds) == 1)):
        clock = time.perf_counter()
        selections = select_many(hub, [list(t) for t in tasks], config, seed=seed, progress=i == 0)
        seconds["select"] += time.perf_counter() - clock
        todo = methods if i == 0 else tuple(m for m in methods if m not in SEED_FREE)
        results = []
        for sel in tqdm(selections, desc="tasks", leave=False):
            result, spent = evaluate_task(hub, sel, dataset, probs, seed, todo, scores, config)
            results.append(result)
            for stage, s in spent.items():
                seconds[stage] += s
        runs.append(results)
    merged = []
    for first, *others in zip(*runs):
        by_seed = {
            m: [first["accuracy"][m]] + [o["accuracy"].get(m, first["accuracy"][m]) for o in others] for m in methods
        }
        merged.append(first | {"accuracy": {m: float(np.mean(v)) for m, v in by_seed.items()}, "by_seed": by_seed})
    return merged, dict(seconds)


def evaluate_task(
    hub: Hub,
    sel: Selection,
    dataset: data.Dataset,
    probs: dict,
    seed: int = 0,
    methods=METHODS,
    scores: Scores = reused_scores,
    config: SelectionConfig = SelectionConfig(),
) -> tuple[dict, dict[str, float]]:
    """Accuracy of each of `methods` on `dataset`'s images of `sel`'s task, the task's expert coverage, and the
    seconds spent: on MLL's reuse, and on each baseline (`baselines.BASELINES`, by name; they calibrate and
    measure on the node samples `config` draws, as `sel` was chosen).

    `scores(hub, selection, images, probs)` gives MLL's logits (the baselines score theirs from `probs`)."""
    classes, keep, y = task_items(hub, sel.classes, dataset)
    images, probs = dataset.images[keep], {m: p[keep] for m, p in probs.items()}
    acc, out, seconds = {}, {}, {}
    if "mll" in methods:
        clock = time.perf_counter()
        acc["mll"] = accuracy(scores(hub, sel, images, probs), y)
        seconds["reuse"] = time.perf_counter() - clock
    cands = candidates(hub, classes, BASELINE_CANDIDATES)
    task = baselines.TaskData(hub, classes, cands, images, probs, y, seed, config)
    for name in (m for m in methods if m != "mll"):
        clock = time.perf_counter()
        acc[name], extra = baselines.BASELINES[name](task)
        seconds[name] = time.perf_counter() - clock
        out |= extra
    result = {
        "classes": list(sel.classes),
        "nodes": sel.nodes,
        "items": int(len(y)),
        "accuracy": {m: acc[m] for m in methods},
        "coverage": 1.0 - len(sel.uncovered) / len(classes),
        "selection": sel.to_json(),
        **out,
    }
    return result, seconds


def all_probabilities(hub: Hub, dataset: data.Dataset) -> dict[str, np.ndarray]:
    """Every model's probabilities on `dataset`'s images (the ensemble baselines read them)."""
    return engine.from_hub(hub, list(hub.entries)).probabilities(dataset.images, progress=f"{dataset.name} images")


def zero_shot_hits(hub: Hub, dataset: data.Dataset, probs: dict | None = None) -> np.ndarray:
    """Per image, whether the general model's concept heads put its concept first among every store concept
    (from `probs`, every model's probabilities on `dataset`, where the caller has them)."""
    heads = list(hub.entry(hub.general_id).heads)
    columns = [heads.index(s) for s in hub.store.synsets]
    if probs is None:
        probs = engine.from_hub(hub, [hub.general_id]).probabilities(dataset.images)
    general = np.asarray(probs[hub.general_id])
    return general[:, columns].argmax(1) == np.asarray(dataset.labels)  # the store's concepts are its classes


def zero_shot(hub: Hub, dataset: data.Dataset, probs: dict | None = None) -> float:
    """The general model's accuracy over every store concept (10-way on Fashion-MNIST), from its concept heads."""
    return float(zero_shot_hits(hub, dataset, probs).mean())


def regime(hub: Hub) -> str:
    """The regime of the hub's general model (`configs.general.REGIMES`): what it learnt the domain from."""
    provenance = hub.entry(hub.general_id).provenance
    return {"captions": "paper", "store": "in-domain"}.get(provenance.get("data", "store"), "other")


def stderr(values) -> float:
    """Standard error of the mean (0 for a single value)."""
    values = np.asarray(values, float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def difference_lines(differences: dict) -> list[str]:
    """One line per baseline: MLL minus it, its standard errors, wins and losses, and whether it beats the noise."""
    lines = []
    for m, d in differences.items():
        verdict = "larger than the noise" if d["beyond_noise"] else "within the noise"
        lines.append(
            f"MLL - {m}: {d['mean']:+.4f} +- {d['stderr']:.4f} over seeds, +- {d['stderr_tasks']:.4f} over tasks, "
            f"{d['wins']} wins / {d['losses']} losses / {d['ties']} ties ({verdict})"
        )
    return lines


def summarise(results: list[dict], methods=METHODS, noise: float = NOISE) -> dict:
    """Suite means per method over seeds, their standard errors, and MLL minus each baseline.

    Each difference has two standard errors: over selection seeds (the suite's mean
    per seed, paired by seed) and over tasks (each task's mean over seeds, paired by
    task), with the tasks MLL wins, loses and ties. It is `beyond_noise` only when
    its mean exceeds `noise` times both.
    """
    per_seed = {m: np.mean([r["by_seed"][m] for r in results], axis=0) for m in methods}
    per_task = {m: np.array([np.mean(r["by_seed"][m]) for r in results]) for m in methods}
    out = {
        "summary": {m: float(per_seed[m].mean()) for m in methods},
        "stderr": {m: stderr(per_seed[m]) for m in methods},
        "per_seed": {m: per_seed[m].tolist() for m in methods},
        "differences": {},
    }
    for m in methods:
        if m != "mll" and "mll" in methods:
            d, by_task = per_seed["mll"] - per_seed[m], per_task["mll"] - per_task[m]
            mean, se, se_tasks = float(d.mean()), stderr(d), stderr(by_task)
            out["differences"][m] = {
                "mean": mean,
                "stderr": se,
                "stderr_tasks": se_tasks,
                "wins": int((by_task > 0).sum()),
                "losses": int((by_task < 0).sum()),
                "ties": int((by_task == 0).sum()),
                "beyond_noise": abs(mean) > noise * max(se, se_tasks),
            }
    return out
