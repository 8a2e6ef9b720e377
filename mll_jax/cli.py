"""`mll-jax`: the command line.

mll-jax demo --json out/demo.json        build, label, select, reuse, compare
mll-jax hub build | list | info ID       the expert hub
mll-jax label [--force] [ID ...]         label models (only unlabelled ones by default)
mll-jax select sandal sneakers boots     choose heads for a task and show them
mll-jax sdag build | show NODE           the semantic DAG
"""

from __future__ import annotations

import argparse
import json
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


def cmd_demo(args) -> None:
    from mll_jax import demo

    result = demo.run(Path(args.hub))
    print(demo.table(result))
    if args.json:
        demo.write_json(result, Path(args.json))
        print(f"wrote {args.json}")
    if args.plot:
        demo.plot(result, Path(args.plot))
        print(f"wrote {args.plot}")


def cmd_hub_build(args) -> None:
    from mll_jax import zoo

    hub = zoo.build(Path(args.hub))
    print(f"hub at {hub.path}: {len(hub.ids('expert'))} experts, general model {hub.general_id}")


def cmd_hub_list(args) -> None:
    from mll_jax import labeling

    hub = _hub(args)
    labelled = {i: labeling.problem(hub, i) or "yes" for i in hub.entries}
    print(f"{'id':28s} {'role':8s} {'arch':5s} {'params':>8s}  {'heads':40s} labelled")
    for i, e in hub.entries.items():
        print(f"{i:28s} {e['role']:8s} {e['arch']:5s} {e['params']:8d}  {', '.join(e['heads'])[:40]:40s} {labelled[i]}")


def cmd_hub_info(args) -> None:
    from mll_jax import labeling

    hub = _hub(args)
    entry = hub.entry(args.id)
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
    for fault in faults:
        print(fault)
    if args.repair and faults:
        for action in verify.repair(hub, faults):
            print(f"repaired: {action}")
        faults = verify.verify(hub)
    print(f"{len(faults)} fault(s) in hub {hub.path}")
    if faults:
        raise ValueError(f"hub {hub.path} has {len(faults)} fault(s); `mll-jax hub verify --repair` fixes them")


def cmd_label(args) -> None:
    from mll_jax import labeling

    hub = _hub(args)
    for i in args.ids:
        hub.entry(i)
    done = labeling.label(hub, args.ids or None, force=args.force)
    print(f"labelled {len(done)} model(s): {', '.join(done) or 'all were labelled already'}")
    for h in labeling.mislabel_report(hub):
        print(f"mislabelled: {h.model} head {h.head} declared {h.declared!r}, measured {', '.join(h.nodes)}")


def cmd_select(args) -> None:
    from mll_jax import selection

    hub = _hub(args)
    sel = selection.select(hub, args.names, seed=args.seed, max_models=args.max_models)
    print(sel.dumps() if args.json else sel.explain() if args.explain else sel.table())


def cmd_sdag_build(args) -> None:
    from mll_jax import sdag, store

    graph = sdag.build(store.load())
    out = Path(args.out)
    graph.save(out)
    print(f"SDAG with {graph.graph.number_of_nodes()} nodes, {graph.graph.number_of_edges()} edges -> {out}")


def cmd_sdag_show(args) -> None:
    from mll_jax import sdag

    print(sdag.describe(sdag.SDAG.load(Path(args.sdag)), args.node))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mll-jax", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hub", default=str(paths.default_hub()), help="hub directory (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build hub, label, select, reuse; print the accuracy table")
    demo.add_argument("--json", help="write the results as JSON to this path")
    demo.add_argument("--plot", help="write a bar chart of mean accuracies (PNG) to this path")
    demo.set_defaults(run=cmd_demo)

    hub = sub.add_parser("hub", help="build or inspect the expert hub").add_subparsers(
        dest="hub_command", required=True
    )
    hub.add_parser("build", help="train the demo experts and the general model").set_defaults(run=cmd_hub_build)
    hub.add_parser("list", help="list the models").set_defaults(run=cmd_hub_list)
    verify = hub.add_parser("verify", help="check every entry; --repair fixes only the broken ones")
    verify.add_argument("--repair", action="store_true", help="remove or re-label broken entries")
    verify.set_defaults(run=cmd_hub_verify)
    info = hub.add_parser("info", help="show one model and its head labels")
    info.add_argument("id")
    info.set_defaults(run=cmd_hub_info)

    label = sub.add_parser("label", help="label models on the sample store")
    label.add_argument("ids", nargs="*", help="models to label (default: every unlabelled one)")
    label.add_argument("--force", action="store_true", help="label again even if a label record exists")
    label.set_defaults(run=cmd_label)

    select = sub.add_parser("select", help="select heads for a task given by class names")
    select.add_argument("names", nargs="+", help='class names, e.g. sandal sneakers "ankle boot"')
    select.add_argument("--json", action="store_true", help="print the selection as JSON")
    select.add_argument("--explain", action="store_true", help="also show every candidate weighed and the calibration")
    select.add_argument("--max-models", type=int, help="use at most this many distinct models")
    select.add_argument("--seed", type=int, default=0)
    select.set_defaults(run=cmd_select)

    sdag = sub.add_parser("sdag", help="build or inspect the semantic DAG").add_subparsers(
        dest="sdag_command", required=True
    )
    default_sdag = str(paths.cache_dir() / "sdag")
    build = sdag.add_parser("build", help="build the SDAG of the sample store")
    build.add_argument("--out", default=default_sdag)
    build.set_defaults(run=cmd_sdag_build)
    show = sdag.add_parser("show", help="show one node")
    show.add_argument("node", help="a node id such as shoe.n.01")
    show.add_argument("--sdag", default=default_sdag)
    show.set_defaults(run=cmd_sdag_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
