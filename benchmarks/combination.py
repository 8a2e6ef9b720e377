"""Head combination, chosen on the development split and suite: CHCO with 1, 2, 3 heads per class and L1 weights,
and the pool (every candidate of a class with equal weight), against the published recipe (f1-top-1, f1-top-3) and
declared, every difference paired by task.

    python benchmarks/combination.py [--world fashion|open] [--hub PATH] [--heads 1 2 3] [--l1 1e-3 1e-2] [--pool]
                                     [--seeds 3] [--json out/combination.json]

Each setting solves the world's development suite (Fashion-MNIST: `configs.suite.DEV_TASKS`;
the open world: its development rule's suite) on the development split at every seed; the
table gives each method's mean accuracy and, against the top-1 setting (the ablation), the
recipe rows and declared, the mean difference with its standard error over tasks and the
tasks won, lost and tied. `SolverConfig.heads_per_class`, `mixture_l1` and each world's
`combination` are set from this table, never from the reported suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

from common import save

import mll_jax as mll
from mll_jax.configs import open_world_hub, suite
from mll_jax.configs.selection import SelectionConfig, SolverConfig
from mll_jax.experiments import evaluation, open_world

RECIPE = ("f1_top1", "f1_top3", "declared")


def setting_name(heads: int, l1: float) -> str:
    return "top1" if heads == 1 else f"h{heads}_l1={l1:g}"


def solvers(heads: list[int], l1s: list[float], pool: bool) -> dict[str, SolverConfig]:
    """The settings compared, by name: top-1, each (heads, L1) mixture, and with `pool` the pool."""
    base = SolverConfig()
    settings = sorted({(1, 0.0)} | {(h, l1) for h, l1 in itertools.product(heads, l1s) if h > 1})
    out = {setting_name(h, l1): dataclasses.replace(base, heads_per_class=h, mixture_l1=l1) for h, l1 in settings}
    return out | ({"pool": dataclasses.replace(base, combination="pool")} if pool else {})


def development_tasks(hub, world: str, dataset) -> list:
    if world == "open":
        return [tuple(t["names"]) for t in open_world.suite(hub, "dev", dataset)]
    return list(suite.DEV_TASKS)


def run(hub, heads: list[int], l1s: list[float], seeds: tuple[int, ...], world: str = "fashion", pool=False) -> dict:
    dataset = evaluation.evaluation_data(hub, "dev")
    probs = evaluation.all_probabilities(hub, dataset)
    tasks, unanswered = evaluation.answerable(hub, development_tasks(hub, world, dataset))
    by_method: dict[str, list] = {}
    recipe, _ = evaluation.evaluate_suite(hub, tasks, dataset, probs, seeds, RECIPE, evaluation.cached_scores)
    for m in RECIPE:
        by_method[m] = [r["by_seed"][m] for r in recipe]
    for name, solver in solvers(heads, l1s, pool).items():
        results, _ = evaluation.evaluate_suite(
            hub, tasks, dataset, probs, seeds, ("mll",), evaluation.cached_scores, SelectionConfig(solver=solver)
        )
        by_method[name] = [r["by_seed"]["mll"] for r in results]
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
        "world": world,
        "split": "dev",
        "seeds": list(seeds),
        "tasks": [list(t) for t in tasks],
        "unanswered": unanswered,
        "accuracy_by_task": by_method,
        "settings": rows,
    }


def table(result: dict) -> str:
    head = "".join(f"vs {m}".ljust(32) for m in ("top1", *RECIPE))
    lines = [f"setting       mean    {head}(±se over tasks, W-L-T)"]
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
    parser.add_argument("--world", choices=("fashion", "open"), default="fashion")
    parser.add_argument("--hub", help="hub directory (default: the demo hub; --world open: the development hub)")
    parser.add_argument("--pool", action="store_true", help="also the pool: each class's candidates, equal weights")
    parser.add_argument("--heads", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--l1", type=float, nargs="+", default=[1e-3, 1e-2])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default="out/combination.json")
    args = parser.parse_args()
    if args.world == "open" and args.hub is None:
        args.hub = str(open_world.hub_path(seed=open_world_hub.DEVELOPMENT_SEED))
    hub = mll.Hub.open(args.hub)
    result = run(hub, args.heads, args.l1, tuple(range(args.seeds)), args.world, args.pool)
    save(result, args.json)
    print(table(result))


if __name__ == "__main__":
    main()
