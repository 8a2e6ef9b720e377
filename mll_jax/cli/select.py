"""`mll-jax select`: choose heads for a task given by class names, and show them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from mll_jax.cli.common import command, open_hub
from mll_jax.configs.selection import COMBINATIONS, COSTS, SelectionConfig, SolverConfig

__all__ = ["add_select", "add_selection_flags", "add_warmup", "with_flags"]


def _run_select(args) -> None:
    from mll_jax import selection

    hub = open_hub(args)
    config = with_flags(hub.selection_config, args)  # the hub's own settings; each flag given replaces one
    sel = selection.select(hub, args.names, config=config, seed=args.seed)
    print(sel.dumps() if args.json else sel.explain() if args.explain else sel.table())
    if args.plot:
        from mll_jax.experiments import picture

        picture.draw(hub.sdag, sel, Path(args.plot), hub.general_id)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)


def with_flags(config: SelectionConfig, args) -> SelectionConfig:
    """`config` with each setting that `add_selection_flags`' flags gave replaced (validated again)."""
    given = {
        "max_models": args.max_models,
        "combination": args.combination,
        "pool_general_share": args.pool_general_share,
        "cost_weight": args.cost_weight,
    }
    solver = dataclasses.replace(config.solver, **{k: v for k, v in given.items() if v is not None})
    given = {"samples_per_class": args.samples_per_class, "cost": args.cost}
    return dataclasses.replace(config, solver=solver, **{k: v for k, v in given.items() if v is not None})


def _share(text: str) -> float | str:
    """A number, or the word as given (`SolverConfig` refuses any but "measured", saying what it takes)."""
    try:
        return float(text)
    except ValueError:
        return text


def _run_warmup(args) -> None:
    from mll_jax import selection

    try:  # the programs the hub's own settings solve with (a hub not built yet: the default settings')
        config = open_hub(args).selection_config
    except FileNotFoundError:
        config = SelectionConfig()
    count = selection.warmup(config, progress=True)
    print(f"{count} selection program(s) ready under {selection.programs.store_dir()}")


def add_warmup(sub) -> None:
    command(
        sub,
        "warmup",
        "prepare the selection programs (one per class bucket) for the hub's settings, so a new process's first query "
        "loads them",
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
    add_selection_flags(select)
    select.add_argument("--plot", help="draw the selection on the SDAG (PNG) to this path")
    select.add_argument("--seed", type=int, default=0)


def add_selection_flags(parser) -> None:
    """The flags that set selection settings (`with_flags` applies them); unset, a setting keeps its value."""
    parser.add_argument("--max-models", type=int, help="use at most this many distinct models")
    parser.add_argument(
        "--combination", choices=COMBINATIONS,
        help="fitted: CHCO's search and mixture on the node samples; pool: every candidate of a class with equal "
        "weight, nothing fitted (the open world's choice: its store has one picture per emoji concept). Unset "
        "flags keep the hub's own settings (Hub.selection_config)",
    )  # fmt: skip
    parser.add_argument(
        "--pool-general-share", type=_share,
        help="in a pool, the general model's share of a class experts also serve: a number in [0, 1], or 'measured' "
        "per task on the node samples (the open world's)",
    )  # fmt: skip
    parser.add_argument(
        "--cost", choices=COSTS,
        help="what a model costs: params (relative to the hub's largest) or flops (GFLOP an image, measured)",
    )  # fmt: skip
    parser.add_argument(
        "--cost-weight", type=float, help=f"weight of the cost term (default {SolverConfig.cost_weight}; 0: free)"
    )
    parser.add_argument(
        "--samples-per-class", type=int,
        help="node samples per class (more: a little more accurate, slower; see configs/selection.py)",
    )  # fmt: skip
