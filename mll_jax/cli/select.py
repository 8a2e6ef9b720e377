"""`mll-jax select`: choose heads for a task given by class names, and show them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from mll_jax.cli.common import command, open_hub
from mll_jax.configs.selection import COMBINATIONS, COSTS, SelectionConfig, SolverConfig

__all__ = ["add_select", "add_warmup"]


def _run_select(args) -> None:
    from mll_jax import selection

    hub = open_hub(args)
    solver = SolverConfig(
        max_models=args.max_models, combination=args.combination, pool_general_share=args.pool_general_share
    )
    if args.cost_weight is not None:
        solver = dataclasses.replace(solver, cost_weight=args.cost_weight)
    config = SelectionConfig(samples_per_class=args.samples_per_class, cost=args.cost, solver=solver)
    sel = selection.select(hub, args.names, config=config, seed=args.seed)
    print(sel.dumps() if args.json else sel.explain() if args.explain else sel.table())
    if args.plot:
        from mll_jax.experiments import picture

        picture.draw(hub.sdag, sel, Path(args.plot), hub.general_id)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)


def _run_warmup(args) -> None:
    from mll_jax import selection

    count = selection.warmup(progress=True)
    print(f"{count} selection program(s) ready under {selection.programs.store_dir()}")


def add_warmup(sub) -> None:
    command(
        sub,
        "warmup",
        "prepare the selection programs (one per class bucket), so a new process's first query loads them",
        "mll-jax warmup",
        _run_warmup,
    )


def add_select(sub) -> None:
    select = command(
        sub,
        "select",
        "select heads for a task given by class names",
        'mll-jax select sandal sneakers "ankle boot" --explain --plot out/selection.png',
        _run_select,
    )
    select.add_argument("names", nargs="+", help='class names, e.g. sandal sneakers "ankle boot"')
    select.add_argument("--json", action="store_true", help="print the selection as JSON")
    select.add_argument("--explain", action="store_true", help="also show every candidate weighed and the calibration")
    select.add_argument("--max-models", type=int, help="use at most this many distinct models")
    select.add_argument(
        "--combination", choices=COMBINATIONS, default=SolverConfig.combination,
        help="fitted: CHCO's search and mixture on the node samples; pool: every candidate of a class with equal "
        "weight, nothing fitted (the open world's choice: its store has one picture per emoji concept)",
    )  # fmt: skip
    select.add_argument(
        "--pool-general-share", type=float,
        help="in a pool, the general model's share of a class experts also serve (the open world's: 0.5)",
    )  # fmt: skip
    select.add_argument(
        "--cost", choices=COSTS, default=SelectionConfig.cost,
        help="what a model costs: params (relative to the hub's largest) or flops (GFLOP an image, measured)",
    )  # fmt: skip
    select.add_argument(
        "--cost-weight", type=float, help=f"weight of the cost term (default {SolverConfig.cost_weight}; 0: free)"
    )
    select.add_argument(
        "--samples-per-class", type=int, default=SelectionConfig.samples_per_class,
        help="node samples per class (more: a little more accurate, slower; see configs/selection.py)",
    )  # fmt: skip
    select.add_argument("--plot", help="draw the selection on the SDAG (PNG) to this path")
    select.add_argument("--seed", type=int, default=0)
