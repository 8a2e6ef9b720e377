"""Head combination, chosen on the development split and suite: CHCO with 1, 2, 3 heads per class and L1 weights,
against the published recipe (f1-top-1, f1-top-3), every difference paired by task.

    python benchmarks/combination.py [--hub PATH] [--heads 1 2 3] [--l1 1e-3 1e-2] [--seeds 3]
                                     [--json out/combination.json]

Each setting solves the development suite (`configs.suite.DEV_TASKS`) on the development
split at every seed; the table gives each method's mean accuracy and, against the top-1
setting (the ablation) and both recipe rows, the mean difference with its standard error
over tasks and the tasks won, lost and tied. `SolverConfig.heads_per_class` and
`mixture_l1` are set from this table, never from the reported suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

from common import save

import mll_jax as mll
from mll_jax.configs import suite
from mll_jax.configs.selection import SelectionConfig
from mll_jax.experiments import evaluation

RECIPE = ("f1_top1", "f1_top3")


def setting_name(heads: int, l1: float) -> str:
    return "top1" if heads == 1 else f"h{heads}_l1={l1:g}"


def run(hub, heads: list[int], l1s: list[float], seeds: tuple[int, ...]) -> dict:
    dataset = evaluation.evaluation_data(hub, "dev")
    probs = evaluation.all_probabilities(hub, dataset)
    tasks, unanswered = evaluation.answerable(hub, suite.DEV_TASKS)
    by_method: dict[str, list] = {}
    recipe, _ = evaluation.evaluate_suite(hub, tasks, dataset, probs, seeds, RECIPE, evaluation.cached_scores)
    for m in RECIPE:
        by_method[m] = [r["by_seed"][m] for r in recipe]
    settings = sorted({(1, 0.0)} | {(h, l1) for h, l1 in itertools.product(heads, l1s) if h > 1})
    for h, l1 in settings:
        solver = dataclasses.replace(SelectionConfig().solver, heads_per_class=h, mixture_l1=l1)
        results, _ = evaluation.evaluate_suite(
            hub, tasks, dataset, probs, seeds, ("mll",), evaluation.cached_scores, SelectionConfig(solver=solver)
        )
        by_method[setting_name(h, l1)] = [r["by_seed"]["mll"] for r in results]
    rows = {}
    for name in by_method:
        if name in RECIPE:
            continue
        merged = [
            {"by_seed": {"mll": by_method[name][t], **{m: by_method[m][t] for m in by_method if m != name}}}
            for t in range(len(tasks))
        ]
        others = tuple(m for m in ("top1", *RECIPE) if m != name)
        rows[name] = evaluation.summarise(merged, ("mll", *others))
    return {
        "split": "dev",
        "seeds": list(seeds),
        "tasks": [list(t) for t in tasks],
        "unanswered": unanswered,
        "accuracy_by_task": by_method,
        "settings": rows,
    }


def table(result: dict) -> str:
    lines = ["setting       mean    vs top1 (±se tasks, W-L-T)     vs f1_top1                     vs f1_top3"]
    recipe = {m: sum(sum(s) / len(s) for s in result["accuracy_by_task"][m]) / len(result["tasks"]) for m in RECIPE}
    for name, row in result["settings"].items():
        cells = [f"{name:12s}", f"{row['summary']['mll']:.4f}"]
        for other in ("top1", *RECIPE):
            d = row["differences"].get(other)
            cells.append(
                f"{d['mean']:+.4f} ± {d['stderr_tasks']:.4f} ({d['wins']}-{d['losses']}-{d['ties']})".ljust(30)
                if d
                else "-".ljust(30)
            )
        lines.append("  ".join(cells))
    lines.append("  ".join(f"{m} {v:.4f}" for m, v in recipe.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", help="hub directory (default: the demo hub)")
    parser.add_argument("--heads", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--l1", type=float, nargs="+", default=[1e-3, 1e-2])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default="out/combination.json")
    args = parser.parse_args()
    hub = mll.Hub.open(args.hub)
    result = run(hub, args.heads, args.l1, tuple(range(args.seeds)))
    save(result, args.json)
    print(table(result))


if __name__ == "__main__":
    main()
