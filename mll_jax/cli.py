"""`mll-jax`: the command line.

mll-jax demo --json out/demo.json          build, label, select, reuse, compare
mll-jax hub build | list | info ID | verify  the expert hub
mll-jax label [--force] [ID ...]           label models (only unlabelled ones by default)
mll-jax convert torch-sequential PATH ...  add a PyTorch model to the hub, converted to Flax
mll-jax select sandal sneakers boots       choose heads for a task and show them
mll-jax experiment growth                  accuracy and coverage against hub size
mll-jax report                             a Markdown report from the results JSON
mll-jax sdag build | show NODE             the semantic DAG
mll-jax cache info | clear PART            what mll_jax keeps on disk
Add -v (or -vv) before the command for log messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path

from mll_jax import paths

EXPECTED_ERRORS = (
    ValueError,
    KeyError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
    ImportError,
)


def _hub(args):
    from mll_jax.hub import Hub

    return Hub.open(args.hub)


def _show(args, result: dict, table: str, plot) -> None:
    """Print an experiment's table; write its JSON and plot where `--json` / `--plot` ask."""
    print(table)
    if args.json:
        _write_json(result, Path(args.json))
    if args.plot:
        plot(result, Path(args.plot))
        print(f"wrote {args.plot}")


def cmd_demo(args) -> None:
    from mll_jax import demo, suite

    result = demo.run(Path(args.hub), suite.spread(suite.DEMO_TASKS, args.tasks))
    _show(args, result, demo.table(result), demo.plot)


def cmd_hub_build(args) -> None:
    from mll_jax import zoo

    hub = zoo.build(Path(args.hub))
    print(f"hub at {hub.path}: {len(hub.ids('expert'))} experts, general model {hub.general_id}")


def cmd_hub_list(args) -> None:
    from mll_jax import labeling

    hub = _hub(args)
    labelled = {i: labeling.problem(hub, i) or "yes" for i in hub.entries}
    if args.json:
        print(json.dumps({i: {**e, "labelled": labelled[i]} for i, e in hub.entries.items()}, indent=1))
        return
    print(f"{'id':28s} {'role':8s} {'arch':5s} {'params':>8s}  {'heads':40s} labelled")
    for i, e in hub.entries.items():
        print(f"{i:28s} {e['role']:8s} {e['arch']:5s} {e['params']:8d}  {', '.join(e['heads'])[:40]:40s} {labelled[i]}")


def cmd_hub_info(args) -> None:
    from mll_jax import labeling

    hub = _hub(args)
    entry = hub.entry(args.id)
    if args.json:
        problem = labeling.problem(hub, args.id)
        heads = [] if problem else [dataclasses.asdict(h) for h in labeling.head_labels(hub, args.id)]
        print(json.dumps({"entry": entry, "problem": problem, "heads": heads}, indent=1, default=_plain))
        return
    print(json.dumps(entry, indent=1))
    if problem := labeling.problem(hub, args.id):
        print(f"excluded from selection: {problem}")
        return
    for h in labeling.head_labels(hub, args.id):
        flag = "  MISLABELLED" if h.mislabelled else ""
        nodes = ", ".join(h.nodes) or "(no concept)"
        print(f"head {h.head} {h.declared!r}: {nodes}  r={h.response:.2f} acc={h.accuracy:.2f}{flag}")


def cmd_hub_verify(args) -> None:
    from mll_jax import verify

    hub = _hub(args)
    faults = verify.verify(hub)
    repaired = verify.repair(hub, faults) if args.repair and faults else []
    if repaired:
        faults = verify.verify(hub)
    if args.json:
        print(json.dumps({"repaired": repaired, "faults": [str(f) for f in faults]}, indent=1))
    else:
        for action in repaired:
            print(f"repaired: {action}")
        for fault in faults:
            print(fault)
        print(f"{len(faults)} fault(s) in hub {hub.path}")
    if faults:
        raise ValueError(f"hub {hub.path} has {len(faults)} fault(s); `mll-jax hub verify --repair` fixes them")


def cmd_label(args) -> None:
    from mll_jax import labeling

    hub = _hub(args)
    for i in args.ids:
        hub.entry(i)
    several = args.processes > 1 or args.coordinator
    if several and args.ids:
        raise ValueError("labelling over several processes labels every model that needs it; drop the model ids")
    if args.processes > 1:
        from mll_jax import distributed

        done = labeling.todo(hub, None, args.force)
        distributed.label_locally(hub, args.processes, args.force, args.dtype)
        hub = _hub(args)  # the coordinator process wrote the records
    elif args.coordinator:
        from mll_jax import distributed

        if args.num_processes is None or args.process_id is None:
            raise ValueError("--coordinator needs --num-processes and --process-id (this process's index)")
        done = distributed.label(
            hub, args.coordinator, args.num_processes, args.process_id, args.force, args.batch_size, args.dtype
        )
        if args.process_id != 0:
            return
    else:
        done = labeling.label(hub, args.ids or None, force=args.force, batch_size=args.batch_size, dtype=args.dtype)
    if args.json:
        mislabelled = [dataclasses.asdict(h) for h in labeling.mislabel_report(hub)]
        print(json.dumps({"labelled": done, "mislabelled": mislabelled}, indent=1, default=_plain))
        return
    print(f"labelled {len(done)} model(s): {', '.join(done) or 'all were labelled already'}")
    for h in labeling.mislabel_report(hub):
        print(f"mislabelled: {h.model} head {h.head} declared {h.declared!r}, measured {', '.join(h.nodes)}")


def cmd_convert(args) -> None:
    from mll_jax import converters

    hub = _hub(args)
    spec = {"shape": args.image_shape, "dtype": "uint8", "mean": args.mean, "std": args.std}
    layout = {"stride": args.stride, "padding": args.padding} if args.converter == "torch-sequential" else {}
    converted = converters.add_to_hub(hub, args.id, args.converter, args.path, args.heads, spec, **layout)
    print(
        f"added {args.id} ({converted.arch} {json.dumps(converted.config)}) to hub {hub.path}; "
        "label it with `mll-jax label`"
    )


def cmd_select(args) -> None:
    from mll_jax import selection

    hub = _hub(args)
    sel = selection.select(hub, args.names, seed=args.seed, max_models=args.max_models)
    print(sel.dumps() if args.json else sel.explain() if args.explain else sel.table())
    if args.plot:
        from mll_jax import picture

        picture.draw(hub.sdag, sel, Path(args.plot), hub.general_id)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)


def cmd_experiment_growth(args) -> None:
    from mll_jax import growth, suite

    hub = _hub(args)
    workdir = Path(args.workdir or paths.cache_dir() / "growth")
    result = growth.run(hub, workdir, args.sizes, args.orders, suite.DEMO_TASKS[: args.tasks], args.seed)
    _show(args, result, growth.table(result), growth.plot)


def cmd_report(args) -> None:
    from mll_jax import report

    out = report.write(Path(args.results), Path(args.out))
    print(f"wrote {out}")
    if args.readme:
        report.update_readme(Path(args.readme), Path(args.results))
        print(f"updated the results block of {args.readme} and {Path(args.readme).parent / 'docs' / 'results.json'}")


def cmd_cache_info(args) -> None:
    parts = paths.cache_parts()
    if args.json:
        print(json.dumps({"path": str(paths.cache_dir()), "bytes": parts}, indent=1))
        return
    print(f"cache {paths.cache_dir()} (set MLL_JAX_CACHE to move it)")
    for name, size in parts.items():
        print(f"  {name:16s} {size / 2**20:10.1f} MiB")
    print(f"  {'total':16s} {sum(parts.values()) / 2**20:10.1f} MiB")


def cmd_cache_clear(args) -> None:
    if bool(args.parts) == args.all:
        raise ValueError("name the parts to delete (see `mll-jax cache info`), or pass --all for everything")
    removed = paths.clear_cache(list(paths.cache_parts()) if args.all else args.parts)
    print(f"removed {', '.join(removed) or 'nothing'} from {paths.cache_dir()}")


def _plain(value):
    """JSON for numpy scalars and tuples."""
    return value.item() if hasattr(value, "item") else list(value)


def _write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


def cmd_sdag_build(args) -> None:
    from mll_jax import sdag, store

    graph = sdag.build(store.load())
    out = Path(args.out)
    graph.save(out)
    print(f"SDAG with {graph.graph.number_of_nodes()} nodes, {graph.graph.number_of_edges()} edges -> {out}")


def cmd_sdag_show(args) -> None:
    from mll_jax import sdag

    print(sdag.describe(sdag.SDAG.load(Path(args.sdag)), args.node))


def _command(sub, name: str, help: str, example: str, run=None, json_flag: bool = False) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with an example; `json_flag` adds --json (print JSON)."""
    cmd = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if run is not None:
        cmd.set_defaults(run=run)
    if json_flag:
        cmd.add_argument("--json", action="store_true", help="print JSON")
    return cmd


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mll-jax", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hub", default=str(paths.default_hub()), help="hub directory (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log progress messages (-vv: debug)")
    sub = p.add_subparsers(dest="command", required=True)

    demo = _command(
        sub,
        "demo",
        "build hub, label, select, reuse; print the accuracy table",
        "mll-jax demo --json out/demo.json --plot out/demo.png",
        cmd_demo,
    )
    demo.add_argument("--json", help="write the results as JSON to this path")
    demo.add_argument("--plot", help="write a bar chart of mean accuracies (PNG) to this path")
    demo.add_argument(
        "--tasks", type=int, help="run only this many of the suite's tasks, spread evenly over it (default: all)"
    )

    hub = sub.add_parser("hub", help="build or inspect the expert hub").add_subparsers(
        dest="hub_command", required=True
    )
    _command(hub, "build", "train the demo experts and the general model", "mll-jax hub build", cmd_hub_build)
    _command(hub, "list", "list the models", "mll-jax hub list --json", cmd_hub_list, json_flag=True)
    verify = _command(
        hub,
        "verify",
        "check every entry; --repair fixes only the broken ones",
        "mll-jax hub verify --repair",
        cmd_hub_verify,
        json_flag=True,
    )
    verify.add_argument("--repair", action="store_true", help="remove or re-label broken entries")
    info = _command(
        hub, "info", "show one model and its head labels", "mll-jax hub info footwear-cnn", cmd_hub_info, json_flag=True
    )
    info.add_argument("id")

    label = _command(
        sub,
        "label",
        "label models on the sample store",
        "mll-jax label --force footwear-cnn",
        cmd_label,
        json_flag=True,
    )
    label.add_argument("ids", nargs="*", help="models to label (default: every unlabelled one)")
    label.add_argument("--force", action="store_true", help="label again even if a label record exists")
    label.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="inference precision")
    label.add_argument("--batch-size", type=int, default=512, help="images per engine batch (default: %(default)s)")
    label.add_argument("--processes", type=int, default=1, help="label with this many local processes")
    label.add_argument("--coordinator", help="multi-host: host:port of process 0 (with --num-processes, --process-id)")
    label.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    label.add_argument("--process-id", type=int, help="multi-host: this process's index, 0 is the coordinator")

    convert = _command(
        sub,
        "convert",
        "convert a checkpoint of another framework (tensors only, no code runs) and add it to the hub",
        "mll-jax convert torch-sequential my_mlp.pt --id my-mlp --heads Sandal Bag --mean 0.286 --std 0.353",
        cmd_convert,
    )
    convert.add_argument("converter", help="checkpoint layout, e.g. torch-sequential (an unknown one lists them all)")
    convert.add_argument(
        "path",
        help="state_dict file (.safetensors, or .pt/.pth/.bin read with weights_only), "
        "or a Hugging Face model directory (config.json + model.safetensors)",
    )
    convert.add_argument("--id", required=True, help="the new model's hub id")
    convert.add_argument(
        "--heads", nargs="+", help="declared class name of each output, in order (default: the checkpoint's id2label)"
    )
    convert.add_argument("--mean", type=float, default=0.0, help="input normalisation: (x/255 - mean) / std")
    convert.add_argument("--std", type=float, default=1.0)
    convert.add_argument("--image-shape", type=int, nargs=3, default=[28, 28, 1], metavar=("H", "W", "C"))
    convert.add_argument("--stride", type=int, default=2, help="torch-sequential: the convolutions' stride")
    convert.add_argument("--padding", type=int, default=1, help="torch-sequential: the convolutions' padding")

    select = _command(
        sub,
        "select",
        "select heads for a task given by class names",
        'mll-jax select sandal sneakers "ankle boot" --explain --plot out/selection.png',
        cmd_select,
    )
    select.add_argument("names", nargs="+", help='class names, e.g. sandal sneakers "ankle boot"')
    select.add_argument("--json", action="store_true", help="print the selection as JSON")
    select.add_argument("--explain", action="store_true", help="also show every candidate weighed and the calibration")
    select.add_argument("--max-models", type=int, help="use at most this many distinct models")
    select.add_argument("--plot", help="draw the selection on the SDAG (PNG) to this path")
    select.add_argument("--seed", type=int, default=0)

    experiment = sub.add_parser("experiment", help="experiments on the hub").add_subparsers(
        dest="experiment_command", required=True
    )
    growth = _command(
        experiment,
        "growth",
        "accuracy and coverage of nested hubs of growing size",
        "mll-jax experiment growth --orders 3 --json out/growth.json --plot out/growth.png",
        cmd_experiment_growth,
    )
    growth.add_argument("--sizes", type=int, nargs="+", help="expert counts (default: 1, 2, 4, ... and all)")
    growth.add_argument("--orders", type=int, default=3, help="random orders of adding experts (default: 3)")
    growth.add_argument("--tasks", type=int, help="use only the first N tasks of the demo suite")
    growth.add_argument("--workdir", help="where the nested hubs live (default: <cache>/growth)")
    growth.add_argument("--json", help="write the results as JSON to this path")
    growth.add_argument("--plot", help="write the growth curve (PNG) to this path")
    growth.add_argument("--seed", type=int, default=0)

    report = _command(
        sub,
        "report",
        "write a Markdown report from the results JSON",
        "mll-jax report --results out --out out/report.md --readme README.md",
        cmd_report,
    )
    report.add_argument("--results", default="out", help="folder with demo.json, growth.json, chco.json, ...")
    report.add_argument("--out", default="out/report.md", help="the report's path (PNGs are copied beside it)")
    report.add_argument("--readme", help="also rewrite this README's results block (and docs/results.json)")

    sdag = sub.add_parser("sdag", help="build or inspect the semantic DAG").add_subparsers(
        dest="sdag_command", required=True
    )
    default_sdag = str(paths.cache_dir() / "sdag")
    build = _command(sdag, "build", "build the SDAG of the sample store", "mll-jax sdag build", cmd_sdag_build)
    build.add_argument("--out", default=default_sdag)
    show = _command(sdag, "show", "show one node", "mll-jax sdag show shoe.n.01", cmd_sdag_show)
    show.add_argument("node", help="a node id such as shoe.n.01")
    show.add_argument("--sdag", default=default_sdag)

    cache = sub.add_parser("cache", help="what mll_jax keeps on disk").add_subparsers(
        dest="cache_command", required=True
    )
    _command(cache, "info", "sizes of the cache's parts", "mll-jax cache info", cmd_cache_info, json_flag=True)
    clear = _command(cache, "clear", "delete parts of the cache", "mll-jax cache clear jax oracles", cmd_cache_clear)
    clear.add_argument("parts", nargs="*", help="parts to delete, as `cache info` names them")
    clear.add_argument("--all", action="store_true", help="delete everything, the hub included")
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def configure_logging(verbose: int) -> None:
    """mll_jax's own logger to stderr: warnings only by default, -v info, -vv debug. It does not
    go through the root logger, which libraries (absl via orbax) reconfigure."""
    logger = logging.getLogger("mll_jax")
    for handler in [h for h in logger.handlers if getattr(h, "from_cli", False)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.from_cli = True
    logger.addHandler(handler)
    logger.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.verbose)
    warnings.filterwarnings("ignore", message="The multilingual functions")
    paths.enable_compile_cache()
    try:
        args.run(args)
    except EXPECTED_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mll-jax: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
