"""The open world end to end (issue 28): its generated hub, labelled, and its suite solved by MLL and the baselines.

The hub is `configs.open_world_hub`'s on the open world's store, with the general
model in the paper's regime over every domain. The suite is drawn from its fixed
rule (`configs.open_world_suite`) over the concepts the split has images of; a
task is scored on every image of its classes in the split, whatever the source.
Results are summarised overall, per task kind and per domain.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from mll_jax import data, labeling, paths
from mll_jax.configs import open_world_hub, open_world_suite
from mll_jax.configs.evaluation import SEEDS
from mll_jax.configs.open_world import STORE_SPEC
from mll_jax.configs.selection import SelectionConfig
from mll_jax.configs.specs import GeneralSpec
from mll_jax.configs.suite import spread
from mll_jax.experiments import evaluation, world_suites
from mll_jax.experiments import growth as growth_lib
from mll_jax.experiments.evaluation import METHODS
from mll_jax.experiments.report import zero_shot_line
from mll_jax.hub import Hub
from mll_jax.zoo import general, generate

__all__ = [
    "METHODS",
    "METHODS_WITHOUT_ORACLE",
    "build_hub",
    "growth",
    "growth_plot",
    "growth_table",
    "hub_path",
    "plot",
    "run",
    "suite",
    "table",
]

# The oracle trains a model per task (about half an hour for the suite on 2 cores), so it runs only when asked.
METHODS_WITHOUT_ORACLE = tuple(m for m in METHODS if m != "oracle")
log = logging.getLogger(__name__)


def hub_path(num_experts: int = 512, seed: int = 0, workdir: Path | None = None) -> Path:
    """Where the generated hub of `num_experts` experts and generator seed `seed` lives (default under the cache)."""
    return (workdir or paths.cache_dir() / "open_world") / f"hub-{num_experts}-seed{seed}"


def build_hub(
    path: Path,
    num_experts: int = 512,
    seed: int = 0,
    general_spec: GeneralSpec = open_world_hub.GENERAL,
    progress: bool = True,
    pretrained_share: float = 0.0,
) -> Hub:
    """The open world's generated hub at `path` (made on the open world's store if new; completed if partial):
    its experts (`pretrained_share` of the heads over lite0's features), its general model, every label, under
    the open world's labelling rule (a hub made under an earlier one is labelled again), solving tasks by the
    open world's selection settings unless a caller says otherwise."""
    try:
        Hub.open(path)
    except FileNotFoundError:
        Hub.create(path, STORE_SPEC, label_rule=open_world_hub.LABEL_RULE, selection=open_world_hub.SELECTION)
    config = open_world_hub.get_config(num_experts, seed, pretrained_share)
    hub = generate.build(path, config, progress=progress)
    if not general.built_from(hub, general_spec):
        general.add_to_hub(hub, general_spec, open_world_hub.INPUT_SPEC)
    stale = hub.label_rule != open_world_hub.LABEL_RULE
    if stale:
        log.info(
            "%s was labelled under %s; labelling it again under %s", path, hub.label_rule, open_world_hub.LABEL_RULE
        )
        hub.set_label_rule(open_world_hub.LABEL_RULE)
    labeling.label(hub, force=stale, progress=progress)
    if hub.selection_config != open_world_hub.SELECTION:  # a hub made before it kept its settings
        hub.set_selection_config(open_world_hub.SELECTION)
    return hub


def suite(hub: Hub, split: str, dataset: data.Dataset) -> list[dict]:
    """The open world's suite of `split` over the concepts `dataset` (that split's images) has."""
    available = frozenset(np.asarray(dataset.synsets)[np.unique(dataset.labels)].tolist())
    return world_suites.draw(hub.sdag, available, open_world_suite.get_rule(split))


def run(
    hub: Hub,
    split: str = "dev",
    seeds=SEEDS,
    methods=METHODS_WITHOUT_ORACLE,
    tasks: int | None = None,
    config: SelectionConfig = open_world_hub.SELECTION,
) -> dict:
    """MLL (selecting by `config`, by default the open world's) and the baselines on the open world's suite of
    `split` (`tasks` of it spread evenly over its kinds and domains, or all)."""
    if len(seeds) < 1:
        raise ValueError("the open world needs at least one selection seed (--seeds 1 or more)")
    seconds = {}
    clock = time.perf_counter()
    dataset = evaluation.evaluation_data(hub, split)
    drawn = list(spread(tuple(suite(hub, split, dataset)), tasks))
    probs = evaluation.all_probabilities(hub, dataset)
    hits = evaluation.zero_shot_hits(hub, dataset, probs)
    concepts = np.asarray(dataset.synsets)[np.asarray(dataset.labels)]  # each image's concept
    in_domain = {
        name: np.isin(concepts, list(hub.sdag.concepts_under(root))) for name, root in open_world_hub.DOMAINS.items()
    }
    seconds["inference"] = time.perf_counter() - clock
    answered, rest = evaluation.answerable(hub, [tuple(t["names"]) for t in drawn])
    results, spent = evaluation.evaluate_suite(hub, answered, dataset, probs, seeds, methods, config=config)
    plan = {tuple(t["names"]): t for t in drawn}
    for r in results:
        t = plan[tuple(r["classes"])]
        r |= {"kind": t["kind"], "domains": t["domains"], "intended_nodes": t["nodes"]}
    groups = {name: [results[i] for i in members] for name, members in _groups(results).items() if name != "all"}
    return {
        "world": "open",
        "split": split,
        "seeds": list(seeds),
        "hub": {"path": str(hub.path), "experts": len(hub.ids("expert")), "general": hub.general_id},
        **evaluation.summarise(results, methods),
        "by_group": {name: {"tasks": len(rs), **evaluation.summarise(rs, methods)} for name, rs in groups.items()},
        "tasks": results,
        "unanswered": rest,
        "general_zero_shot": float(hits.mean()),
        "general_zero_shot_by_domain": {d: float(hits[mask].mean()) for d, mask in in_domain.items() if mask.any()},
        "seconds": seconds | spent,
    }


def _groups(tasks: list[dict]) -> dict[str, list[int]]:
    """The suite's tasks (each with its kind and domains) by group: all, each kind, each domain (its tasks alone)."""
    groups = {"all": list(range(len(tasks)))}
    groups |= {f"kind:{k}": [i for i, t in enumerate(tasks) if t["kind"] == k] for k in world_suites.KINDS}
    for domain in sorted({d for t in tasks for d in t["domains"]}):
        groups[f"domain:{domain}"] = [i for i, t in enumerate(tasks) if t["domains"] == [domain]]
    return {name: members for name, members in groups.items() if len(members) > 1}


def growth(
    hub: Hub, workdir: Path, sizes=None, orders: int = 3, split: str = "test", seed: int = 0, tasks: int | None = None
) -> dict:
    """Nested hubs grown from `hub`'s experts in `orders` random orders (`experiments.growth`, the paper regime
    with the hub's own general model, no oracle), scored on the suite of `split` (`tasks` of it spread evenly, or
    all); per size, each method's mean over the whole suite, each task kind and each domain."""
    dataset = evaluation.evaluation_data(hub, split)
    drawn = list(spread(tuple(suite(hub, split, dataset)), tasks))
    names = [tuple(t["names"]) for t in drawn]
    result = growth_lib.run(
        hub,
        workdir,
        sizes,
        orders,
        names,
        seed,
        ("paper",),
        test=dataset,
        generals={"paper": hub},
        oracle=False,
        config=open_world_hub.SELECTION,
    )
    plan = {tuple(t["names"]): t for t in drawn}
    tasks = [plan[tuple(t)] for t in result["tasks"]]

    def mean(method: str, size: int, members: list[int]) -> float:  # over orders, of the group's mean over tasks
        at = [r for r in result["rows"] if r["size"] == size]
        return float(np.mean([np.mean([r["by_task"][method][i] for i in members]) for r in at]))

    result["by_group"] = {
        name: [
            {"size": size, "tasks": len(members), **{m: mean(m, size, members) for m in growth_lib.METHODS}}
            for size in result["sizes"]
        ]
        for name, members in _groups(tasks).items()
    }
    result["split"] = split
    return result


def growth_table(result: dict) -> str:
    """MLL (and patch only) per hub size for the whole suite, each kind and each domain, mean over orders."""
    sizes = result["sizes"]
    header = f"{'MLL (patch only)':24s}{'n':>4s} " + " ".join(f"{s:>13d}" for s in sizes)
    lines = [growth_lib.table(result), "", header, "-" * len(header)]
    for name, per_size in result["by_group"].items():
        cells = [f"{p['mll']:.3f} ({p['patch_only']:.3f})" for p in per_size]
        lines.append(f"{name:24s}{per_size[0]['tasks']:4d} " + " ".join(f"{c:>13s}" for c in cells))
    return "\n".join(lines)


def growth_plot(result: dict, path: Path) -> None:
    """One panel per group (the whole suite, each kind, each domain): each method's mean over orders against the
    number of experts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(result["by_group"].items())
    columns = 4
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), dpi=110, squeeze=False)
    sizes = result["sizes"]
    for ax, (name, per_size) in zip(axes.flat, groups):
        for m in growth_lib.METHODS:
            ax.plot(sizes, [p[m] for p in per_size], marker="o", ms=2, color=growth_lib.COLORS[m], label=m)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, growth_lib.tick_labels(sizes), fontsize=7)
        ax.set_title(f"{name.split(':')[-1]} ({per_size[0]['tasks']} tasks)", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    axes[0][0].set_ylabel("mean accuracy")
    fig.suptitle(
        f"Open world: accuracy against experts in the hub ({result['split']} split, mean over "
        f"{len(result['orders'])} random orders)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def table(result: dict) -> str:
    """Each method's mean over the suite, each task kind and each domain; MLL minus each baseline."""
    methods = list(result["summary"])
    header = f"{'tasks':28s}{'n':>4s} " + " ".join(f"{m:>10s}" for m in methods)
    lines = [header, "-" * len(header)]
    rows = [("all", {**result, "tasks": len(result["tasks"])}), *result["by_group"].items()]
    for name, group in rows:
        lines.append(f"{name:28s}{group['tasks']:4d} " + " ".join(f"{group['summary'][m]:10.3f}" for m in methods))
    lines.append("")
    lines += evaluation.difference_lines(result["differences"])
    lines.append(f"general model zero-shot over every concept: {result['general_zero_shot']:.3f}")
    lines.append(zero_shot_line(result))
    for u in result["unanswered"]:
        lines.append(
            f"unanswered: {', '.join(u['classes'])}: {u.get('error') or 'by name: ' + ', '.join(u['by_name'])}"
        )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Mean accuracy of each method over the whole suite, each task kind and each domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(result["summary"])
    groups = [("all", result["summary"])] + [(name, g["summary"]) for name, g in result["by_group"].items()]
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(groups)), 4), dpi=120)
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs = np.arange(len(groups)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(xs, [summary[m] for _, summary in groups], width, label=m)
    ax.set_xticks(np.arange(len(groups)), [name.split(":")[-1] for name, _ in groups], rotation=30, ha="right")
    ax.set_ylabel(f"mean accuracy ({result['split']} split)")
    ax.set_title(f"Open world: {result['hub']['experts']} experts, {len(result['tasks'])} tasks")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
