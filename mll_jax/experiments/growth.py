"""Hub growth (method.md §4.2): zero-shot accuracy and coverage against the number of experts, in two regimes.

Nested hubs are grown from a full hub in several random orders: each step adds
the next experts (the general model is always present), labels only the new
models, and solves the suite with MLL and every baseline. It is run once per
general-model regime (`configs.general.REGIMES`): the paper's, whose general model
never saw a store image, and the in-domain ablation. The oracle does not depend
on the hub: one line. Selections are scored from every model's test-split
probabilities, computed once (`evaluation.cached_scores`, equal to what `reuse` gives).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mll_jax import data, engine, labeling
from mll_jax.configs import general as regimes_lib
from mll_jax.configs import scale_hub, suite
from mll_jax.configs.selection import SelectionConfig
from mll_jax.experiments import baselines, evaluation
from mll_jax.hub import Hub
from mll_jax.zoo import general, generate

__all__ = ["METHODS", "REGIMES", "full_hub", "mislabels", "paired_differences", "plot", "run", "table"]

METHODS = ("mll", "patch_only", "f1_top1", "f1_top3", "declared", "random")  # the oracle is one line: it has no hub
REGIMES = tuple(regimes_lib.REGIMES)  # paper, in-domain
log = logging.getLogger(__name__)


def default_sizes(num_experts: int) -> list[int]:
    """1, 2, 4, ... and every expert."""
    sizes = [1 << i for i in range(num_experts.bit_length()) if 1 << i < num_experts]
    return sizes + [num_experts]


def full_hub(path: Path, num_experts: int = 256) -> Hub:
    """The generated diverse hub (`configs.scale_hub.growth_config`) at `path`, built where it lacks experts."""
    return generate.build(path, scale_hub.growth_config(num_experts))


def general_model(full: Hub, workdir: Path, regime: str) -> Hub:
    """A hub holding only `regime`'s general model for `full`'s store (trained once, kept under `workdir`)."""
    spec = regimes_lib.get_config(regime)
    path = Path(workdir) / f"general-{regime}"
    try:
        hub = Hub.open(path)
    except FileNotFoundError:
        hub = Hub.create(path, full.store_spec)
    if hub.general_id is None:
        log.info("training the %s general model", regime)
        general.add_to_hub(hub, spec, full.entry(full.ids("expert")[0]).input_spec)
    return hub


def mislabels(hub: Hub) -> dict:
    """Precision and recall of labelling at finding the declared head names a generator swapped on purpose."""
    swapped = {(m, h) for m in hub.ids("expert") for h in (hub.entry(m).provenance.get("swap_heads") or ())}
    reported = {(h.model, h.head) for h in labeling.mislabel_report(hub)}
    found = swapped & reported
    return {
        "swapped_heads": len(swapped),
        "reported_heads": len(reported),
        "precision": len(found) / len(reported) if reported else float("nan"),
        "recall": len(found) / len(swapped) if swapped else float("nan"),
        "missed": sorted(f"{m}:{h}" for m, h in swapped - reported),
        "false_alarms": sorted(f"{m}:{h}" for m, h in reported - swapped),
    }


def run(
    full: Hub,
    workdir: Path,
    sizes: list[int] | None = None,
    orders: int = 3,
    tasks=suite.DEMO_TASKS,
    seed: int = 0,
    regimes: tuple[str, ...] = REGIMES,
    test: data.Dataset | None = None,
    generals: dict[str, Hub] | None = None,
    oracle: bool = True,
    config: SelectionConfig = SelectionConfig(),
) -> dict:
    """Grow `orders` nested hubs per regime under `workdir` to each of `sizes` experts of `full`; evaluate each.

    `test`: the images tasks are scored on (default: the store source's test split); `generals`: per regime, a
    hub whose general model the nested hubs get (default: each regime's, trained once under `workdir`);
    `oracle`: also train (or read back) each task's oracle; `config`: how MLL selects."""
    experts = full.ids("expert")
    sizes = sorted(set(sizes or default_sizes(len(experts))))
    if not sizes or sizes[0] < 1 or sizes[-1] > len(experts):
        raise ValueError(f"hub sizes must lie in 1..{len(experts)} (the full hub's experts), got {sizes}")
    if orders < 1:
        raise ValueError(f"orders must be at least 1, got {orders}")
    for regime in regimes:
        regimes_lib.get_config(regime)  # an unknown name fails here, before any work
    if generals is None:
        generals = {r: general_model(full, workdir, r) for r in regimes}
    test = data.load(full.store_spec.source, "test") if test is None else test
    expert_probs = engine.from_hub(full, experts).probabilities(test.images, progress="experts on the test split")
    tasks, left_out = evaluation.answerable(full, tasks)  # classes by name have no node samples for the baselines
    rng = np.random.default_rng(seed)
    permutations = [list(rng.permutation(experts)) for _ in range(orders)]
    rows, mislabelled = [], None
    bar = tqdm(total=len(regimes) * orders * len(sizes), desc="growing hubs")
    for regime, source in generals.items():
        general_id = source.general_id
        probs = expert_probs | engine.from_hub(source, [general_id]).probabilities(test.images)
        for o, order in enumerate(permutations):
            path = Path(workdir) / regime / f"order-{o}"
            if path.exists():
                shutil.rmtree(path)  # a previous run's hub: start the nesting afresh
            hub = Hub.create(path, full.store_spec, label_rule=full.label_rule)
            hub.copy_model(source, general_id)
            for size in sizes:
                for model_id in order[len(hub.ids("expert")) : size]:
                    hub.copy_model(full, model_id)
                labelled = labeling.label(hub, progress=False)
                results, seconds = evaluation.evaluate_suite(
                    hub, tasks, test, probs, (seed,), METHODS, scores=evaluation.cached_scores, config=config
                )
                rows.append(
                    {
                        "regime": regime,
                        "order": o,
                        "size": size,
                        "experts": order[:size],
                        "labelled_now": labelled,
                        "accuracy": {m: float(np.mean([r["accuracy"][m] for r in results])) for m in METHODS},
                        "by_task": {m: [float(r["accuracy"][m]) for r in results] for m in METHODS},
                        "coverage": float(np.mean([r["coverage"] for r in results])),
                        "seconds": seconds,
                    }
                )
                log.info("%s, order %d, %d experts: %s", regime, o, size, rows[-1]["accuracy"])
                bar.update()
            if mislabelled is None and sizes[-1] == len(experts):
                mislabelled = mislabels(hub)  # the whole hub's experts, labelled
    bar.close()
    oracles = []  # independent of the hub: one per task, trained once (or read from the oracle cache)
    for names in tqdm(tasks if oracle else (), desc="oracle"):
        classes, keep, y = evaluation.task_items(full, names, test)
        oracles.append(evaluation.accuracy(baselines.oracle_logits(full, classes, test.images[keep]), y))
    by_regime = {r: [row for row in rows if row["regime"] == r] for r in regimes}
    summary = {r: summarise(by_regime[r], sizes) for r in regimes}
    differences = {r: paired_differences(by_regime[r], sizes) for r in regimes}
    return {
        "hub": {"path": str(full.path), "experts": len(experts)},
        "regimes": list(regimes),
        "general": {r: g.entry(g.general_id).provenance for r, g in generals.items()},
        "general_zero_shot": {r: evaluation.zero_shot(g, test) for r, g in generals.items()},
        "sizes": sizes,
        "orders": permutations,
        "tasks": [list(t) for t in tasks],
        "left_out": left_out,
        "oracle": float(np.mean(oracles)) if oracles else None,
        "oracle_by_task": oracles,
        "rows": rows,
        "summary": summary,
        "differences": differences,
        "mislabels": mislabelled,
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
                "stderr": evaluation.stderr(values),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }
        out.append(entry)
    return out


def paired_differences(rows: list[dict], sizes: list[int]) -> list[dict]:
    """Per hub size: MLL minus each baseline, with standard errors over orders (paired by order) and over tasks
    (each task's mean over orders, paired by task) and per-task wins and losses (`evaluation.summarise`, with the
    orders in the place of selection seeds)."""
    out = []
    for size in sizes:
        at = sorted((r for r in rows if r["size"] == size), key=lambda r: r["order"])
        tasks = len(at[0]["by_task"]["mll"])
        per_task = [{"by_seed": {m: [r["by_task"][m][t] for r in at] for m in METHODS}} for t in range(tasks)]
        out.append({"size": size, **evaluation.summarise(per_task, METHODS)["differences"]})
    return out


def table(result: dict) -> str:
    lines = []
    for regime in result["regimes"]:
        header = f"{regime + ' regime':>18s} " + " ".join(f"{m:>16s}" for m in (*METHODS, "coverage"))
        lines += [header, "-" * len(header)]
        for s in result["summary"][regime]:
            cells = [f"{s[m]['mean']:.3f}+-{s[m]['stderr']:.3f}" for m in (*METHODS, "coverage")]
            lines.append(f"{str(s['size']) + ' experts':>18s} " + " ".join(f"{c:>16s}" for c in cells))
        for d in result.get("differences", {}).get(regime, []):
            cells = [
                f"{m} {v['mean']:+.4f}+-{v['stderr_tasks']:.4f} ({v['wins']}-{v['losses']})"
                for m, v in d.items()
                if m != "size"
            ]
            lines.append(f"{str(d['size']) + ' experts':>18s} MLL minus: " + ", ".join(cells))
        zero_shot = result["general_zero_shot"][regime]
        lines += [f"general model alone, every concept: {zero_shot:.3f}", ""]
    oracle = "not run" if result["oracle"] is None else f"{result['oracle']:.3f}"
    lines.append(
        f"oracle (independent of the hub): {oracle}; mean +- standard error over {len(result['orders'])} orders"
    )
    m = result.get("mislabels")
    if m:
        lines.append(
            f"swapped declared names found by labelling: recall {m['recall']:.3f}, precision {m['precision']:.3f} "
            f"({m['swapped_heads']} swapped heads, {m['reported_heads']} reported)"
        )
    return "\n".join(lines)


def tick_labels(sizes: list[int]) -> list[str]:
    """Labels for log2-spaced ticks; a size too close to the last one (16 before 17) gets none."""
    labels = [str(s) if i + 1 == len(sizes) or sizes[i + 1] / s > 1.25 else "" for i, s in enumerate(sizes)]
    return labels


COLORS = {
    "mll": "tab:blue",
    "patch_only": "tab:green",
    "f1_top1": "tab:red",
    "f1_top3": "tab:orange",
    "declared": "tab:brown",
    "random": "tab:gray",
}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = result["regimes"]
    sizes = result["sizes"]
    fig, axes = plt.subplots(1, len(regimes) + 1, figsize=(5 * len(regimes) + 4, 4.2), dpi=120)
    low = min(min(s[m]["min"] for s in result["summary"][r] for m in METHODS) for r in regimes)
    if result["oracle"] is not None:
        low = min(low, result["oracle"])
    for ax, regime in zip(axes, regimes):
        summary = result["summary"][regime]
        for m in METHODS:
            ax.plot(sizes, [s[m]["mean"] for s in summary], marker="o", ms=3, color=COLORS[m], label=m)
            ax.fill_between(
                sizes, [s[m]["min"] for s in summary], [s[m]["max"] for s in summary], color=COLORS[m], alpha=0.15
            )
        if result["oracle"] is not None:
            ax.axhline(result["oracle"], color="black", linestyle="--", linewidth=1, label="oracle")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, tick_labels(sizes))
        ax.set_ylim(low - 0.02, 1.0)
        ax.set_xlabel("experts in the hub")
        ax.set_ylabel(f"mean test accuracy, {len(result['tasks'])} tasks")
        ax.set_title(f"{regime} general model", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    cov_ax = axes[-1]
    summary = result["summary"][regimes[0]]
    cov_ax.plot(sizes, [s["coverage"]["mean"] for s in summary], marker="s", ms=3, color="tab:purple")
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
    cov_ax.set_title("Coverage", fontsize=10)
    cov_ax.grid(alpha=0.3)
    fig.suptitle(
        f"Test accuracy against hub size, {result['hub']['experts']}-expert generated hub "
        f"(shaded: min to max over {len(result['orders'])} random orders)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
