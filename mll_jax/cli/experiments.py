"""`mll-jax demo`, `mll-jax experiment growth`, `mll-jax experiment open-world` and `mll-jax report`."""

from __future__ import annotations

from pathlib import Path

from mll_jax import paths
from mll_jax.cli.common import command, show

__all__ = ["add_demo", "add_experiment", "add_report"]


def _run_demo(args) -> None:
    if args.world == "open":
        _run_open_world_demo(args)
        return
    from mll_jax.configs import suite
    from mll_jax.experiments import demo

    if args.experts is not None or args.oracle:
        raise SystemExit("--experts and --oracle belong to the open world's demo (--world open)")
    tasks = suite.spread(suite.tasks(args.split), args.tasks)
    result = demo.run(Path(args.hub), tasks, tuple(range(5 if args.seeds is None else args.seeds)), args.split)
    show(args, result, demo.table(result), demo.plot)


def _run_open_world_demo(args) -> None:
    """The open world's reported hub and suite; `--hub` names a hub to run on instead (built there if absent)."""
    from mll_jax.experiments import open_world
    from mll_jax.hub import Hub

    experts = args.experts or 512
    named = args.hub != str(paths.default_hub())
    path = Path(args.hub) if named else open_world.hub_path(experts, seed=0)
    hub = Hub.open(path) if named and path.exists() else open_world.build_hub(path, experts, seed=0)
    methods = open_world.METHODS if args.oracle else open_world.METHODS_WITHOUT_ORACLE
    result = open_world.run(hub, args.split, tuple(range(3 if args.seeds is None else args.seeds)), methods, args.tasks)
    show(args, result, open_world.table(result), open_world.plot)
    if not args.oracle:
        print("the oracle (a model trained per task, about half an hour) runs with --oracle")


def _run_growth(args) -> None:
    from mll_jax.configs import suite
    from mll_jax.experiments import growth

    if args.world == "open":
        _run_open_world_growth(args)
        return
    if args.split != "test":
        raise SystemExit("the Fashion-MNIST growth runs the demo suite on the test split; --split is the open world's")
    workdir = Path(args.workdir or paths.cache_dir() / "growth")
    hub = growth.full_hub(workdir / f"hub-{args.experts}", args.experts)
    tasks = suite.spread(suite.DEMO_TASKS, args.tasks)
    result = growth.run(hub, workdir, args.sizes, args.orders, tasks, args.seed, tuple(args.regimes))
    show(args, result, growth.table(result), growth.plot)


def _run_open_world_growth(args) -> None:
    from mll_jax.experiments import open_world

    if args.tasks is not None or args.experts != 256:
        raise SystemExit("the open world's growth runs its whole suite on its 512-expert hub; drop --tasks, --experts")
    hub = open_world.build_hub(open_world.hub_path(512, 0), 512, 0)
    workdir = Path(args.workdir or paths.cache_dir() / "open_world" / "growth")
    result = open_world.growth(hub, workdir, args.sizes, args.orders, args.split, args.seed)
    show(args, result, open_world.growth_table(result), open_world.growth_plot)


def _run_open_world(args) -> None:
    from mll_jax.experiments import open_world

    path = open_world.hub_path(args.experts, args.hub_seed, Path(args.workdir) if args.workdir else None)
    hub = open_world.build_hub(path, args.experts, args.hub_seed)
    methods = open_world.METHODS if args.oracle else open_world.METHODS_WITHOUT_ORACLE
    result = open_world.run(hub, args.split, tuple(range(args.seeds)), methods, args.tasks)
    show(args, result, open_world.table(result), open_world.plot)


def _run_report(args) -> None:
    from mll_jax.experiments import report

    out = report.write(Path(args.results), Path(args.out))
    print(f"wrote {out}")
    if args.readme:
        report.update_readme(Path(args.readme), Path(args.results))
        print(f"updated the results block of {args.readme} and {Path(args.readme).parent / 'docs' / 'results.json'}")


def add_demo(sub) -> None:
    demo = command(
        sub,
        "demo",
        "build hub, label, select, reuse; print the accuracy table",
        "mll-jax demo --json out/open_world.json --plot out/open_world.png\n"
        "  mll-jax demo --world fashion --json out/demo.json --plot out/demo.png",
        _run_demo,
    )
    demo.add_argument(
        "--world",
        choices=("open", "fashion"),
        default="open",
        help="open: the open world's generated hub over every domain and its suite (default; its hub lives under "
        "<cache>/open_world unless --hub names one); fashion: the Fashion-MNIST demo hub (--hub) and its suite",
    )
    demo.add_argument("--json", help="write the results as JSON to this path")
    demo.add_argument("--plot", help="write a bar chart of mean accuracies (PNG) to this path")
    demo.add_argument(
        "--tasks",
        type=int,
        help="run only this many of the suite's tasks, spread evenly over it (default: all)",
    )
    demo.add_argument("--seeds", type=int, help="selection seeds 0..N-1 (default: 3 open, 5 fashion)")
    demo.add_argument("--experts", type=int, help="open world: experts of the generated hub (default: 512)")
    demo.add_argument(
        "--oracle", action="store_true", help="open world: also train each task's oracle (about half an hour)"
    )
    demo.add_argument(
        "--split",
        choices=("test", "dev"),
        default="test",
        help="test: the reported suite on the test split; dev: the development suite on the development split",
    )


def _growth_regimes() -> tuple[str, ...]:
    from mll_jax.configs.general import REGIMES  # data only: cheap to import for --help

    return tuple(REGIMES)


def add_experiment(sub) -> None:
    experiment = sub.add_parser("experiment", help="experiments on the hub").add_subparsers(
        dest="experiment_command", required=True
    )
    growth = command(
        experiment,
        "growth",
        "accuracy and coverage of nested hubs of growing size, grown from a generated hub, in two regimes",
        "mll-jax experiment growth --orders 3 --json out/growth.json --plot out/growth.png",
        _run_growth,
    )
    growth.add_argument(
        "--world",
        choices=("fashion", "open"),
        default="fashion",
        help="fashion: the generated Fashion-MNIST hub, both regimes (default); open: the open world's reported "
        "hub and suite, paper regime, per task kind and domain",
    )
    growth.add_argument(
        "--split", choices=("test", "dev"), default="test", help="open world: the suite and split (default: test)"
    )
    growth.add_argument("--sizes", type=int, nargs="+", help="expert counts (default: 1, 2, 4, ... and all)")
    growth.add_argument("--orders", type=int, default=3, help="random orders of adding experts (default: 3)")
    growth.add_argument(
        "--experts", type=int, default=256, help="experts of the generated hub grown from (default: 256)"
    )
    growth.add_argument(
        "--regimes",
        nargs="+",
        default=list(_growth_regimes()),
        choices=list(_growth_regimes()),
        help="general-model regimes (default: both)",
    )
    growth.add_argument("--tasks", type=int, help="run only this many of the demo suite's tasks, spread evenly over it")
    growth.add_argument("--workdir", help="where the generated and nested hubs live (default: <cache>/growth)")
    growth.add_argument("--json", help="write the results as JSON to this path")
    growth.add_argument("--plot", help="write the growth curve (PNG) to this path")
    growth.add_argument("--seed", type=int, default=0)
    world = command(
        experiment,
        "open-world",
        "the open world's generated hub (every domain, one store) and its suite, MLL against the baselines",
        "mll-jax experiment open-world --split dev --json out/open_world_dev.json --plot out/open_world_dev.png",
        _run_open_world,
    )
    world.add_argument(
        "--split",
        choices=("test", "dev"),
        default="dev",
        help="dev: the development suite on the development split (design choices); test: the reported suite",
    )
    world.add_argument("--experts", type=int, default=512, help="experts of the generated hub (default: 512)")
    world.add_argument(
        "--hub-seed", type=int, default=0, help="the hub generator's seed (0: reported; 1: the development hub)"
    )
    world.add_argument("--seeds", type=int, default=3, help="selection seeds 0..N-1 (default: 3)")
    world.add_argument("--tasks", type=int, help="only this many of the suite's tasks, spread evenly (default: all 60)")
    world.add_argument(
        "--oracle", action="store_true", help="also train each task's oracle (about half an hour for the suite)"
    )
    world.add_argument("--workdir", help="where the hubs live (default: <cache>/open_world)")
    world.add_argument("--json", help="write the results as JSON to this path")
    world.add_argument("--plot", help="write mean accuracy per task kind and domain (PNG) to this path")


def add_report(sub) -> None:
    report = command(
        sub,
        "report",
        "write a Markdown report from the results JSON",
        "mll-jax report --results out --out out/report.md --readme README.md",
        _run_report,
    )
    report.add_argument("--results", default="out", help="folder with demo.json, growth.json, chco.json, ...")
    report.add_argument("--out", default="out/report.md", help="the report's path (PNGs are copied beside it)")
    report.add_argument("--readme", help="also rewrite this README's results block (and docs/results.json)")
