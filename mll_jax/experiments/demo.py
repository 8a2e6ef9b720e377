"""The demo: build the hub, label it, then solve the suite with MLL and every baseline (method.md §4).

Every seed-dependent method (MLL, patch only, f1-top-k, random) is run once per
selection seed (`evaluation`); summaries carry the mean and standard error over seeds.
"""

from __future__ import annotations

import time
from pathlib import Path

from mll_jax import labeling, zoo
from mll_jax.configs import suite
from mll_jax.configs.evaluation import NOISE, SEEDS
from mll_jax.experiments import evaluation
from mll_jax.experiments.evaluation import METHODS

__all__ = ["plot", "run", "table"]


def run(hub_path: Path, tasks=None, seeds=SEEDS, split: str = "test") -> dict:
    """The demo on `split`: the reported suite on the test split, or the development suite on the dev split."""
    tasks = suite.tasks(split) if tasks is None else tasks
    if len(seeds) < 1:
        raise ValueError("the demo needs at least one selection seed (--seeds 1 or more)")
    seconds: dict[str, float] = {}
    start = clock = time.perf_counter()
    hub = zoo.build(hub_path)
    seconds["hub"] = time.perf_counter() - clock

    clock = time.perf_counter()
    labeling.label(hub)
    seconds["label"] = time.perf_counter() - clock

    clock = time.perf_counter()
    dataset = evaluation.evaluation_data(hub, split)
    probs = evaluation.all_probabilities(hub, dataset)
    seconds["inference"] = time.perf_counter() - clock

    answered, rest = evaluation.answerable(hub, tasks)
    results, spent = evaluation.evaluate_suite(hub, answered, dataset, probs, seeds)
    seconds |= spent
    clock = time.perf_counter()
    named = [r["classes"] for r in rest if "by_name" in r]
    by_name = evaluation.evaluate_by_name(hub, named, dataset, suite.OUTSIDE_WORDNET, seeds) if named else []
    seconds["by_name"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - start
    return {
        "split": split,
        "seeds": list(seeds),
        **evaluation.summarise(results),
        "noise_rule": (
            f"beyond_noise: |mean difference| > {NOISE} standard errors, over selection seeds and over tasks"
        ),
        "tasks": results,
        "by_name": by_name,
        "unanswered": [r for r in rest if "error" in r],
        "seconds": seconds,
        "hub": {"path": str(hub_path), "experts": len(hub.ids("expert")), "general": hub.general_id},
        "general_regime": evaluation.regime(hub),
        "general_zero_shot": evaluation.zero_shot(hub, dataset, probs),
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
    lines += evaluation.difference_lines(result["differences"])
    for r in result.get("by_name", []):
        lines.append(
            f"by name ({', '.join(r['by_name'])}): {', '.join(r['classes'])}: MLL {r['accuracy']['mll']:.3f}, "
            f"general model alone {r['accuracy']['general']:.3f} ({r['items']} items)"
        )
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
