"""`mll-jax cache info | clear` and `mll-jax sdag build | show`: what mll_jax keeps on disk."""

from __future__ import annotations

import json
from pathlib import Path

from mll_jax import paths
from mll_jax.cli.common import command

__all__ = ["add_cache", "add_sdag"]


def _run_cache_info(args) -> None:
    parts = paths.cache_parts()
    if args.json:
        print(json.dumps({"path": str(paths.cache_dir()), "bytes": parts}, indent=1))
        return
    print(f"cache {paths.cache_dir()} (set MLL_JAX_CACHE to move it)")
    for name, size in parts.items():
        print(f"  {name:16s} {size / 2**20:10.1f} MiB")
    print(f"  {'total':16s} {sum(parts.values()) / 2**20:10.1f} MiB")


def _run_cache_clear(args) -> None:
    if bool(args.parts) == args.all:
        raise ValueError("name the parts to delete (see `mll-jax cache info`), or pass --all for everything")
    removed = paths.clear_cache(list(paths.cache_parts()) if args.all else args.parts)
    print(f"removed {', '.join(removed) or 'nothing'} from {paths.cache_dir()}")


def _run_sdag_build(args) -> None:
    from mll_jax.concepts import sdag

    if args.out is None:  # the hub's own SDAG, rebuilt from its sample store
        from mll_jax.hub import Hub

        hub = Hub.open(args.hub)
        hub.rebuild_sdag()
        graph, out = hub.sdag, hub.path
    else:
        from mll_jax.data import store

        graph, out = sdag.build(store.load()), Path(args.out)
        graph.save(out)
    print(f"SDAG with {graph.graph.number_of_nodes()} nodes, {graph.graph.number_of_edges()} edges -> {out}")


def _run_sdag_show(args) -> None:
    from mll_jax.concepts import sdag

    if args.sdag is None:
        from mll_jax.hub import Hub

        graph = Hub.open(args.hub).sdag
    else:
        graph = sdag.SDAG.load(Path(args.sdag))
    print(sdag.describe(graph, args.node))


def add_sdag(sub) -> None:
    sdag = sub.add_parser("sdag", help="build or inspect the semantic DAG").add_subparsers(
        dest="sdag_command", required=True
    )
    build = command(sdag, "build", "build the SDAG of the sample store again", "mll-jax sdag build", _run_sdag_build)
    build.add_argument("--out", help="write it to this folder instead of into the hub (default: the hub's own)")
    show = command(sdag, "show", "show one node", "mll-jax sdag show shoe.n.01", _run_sdag_show)
    show.add_argument("node", help="a node id such as shoe.n.01")
    show.add_argument("--sdag", help="a folder with an SDAG of its own (default: the hub's)")


def add_cache(sub) -> None:
    cache = sub.add_parser("cache", help="what mll_jax keeps on disk").add_subparsers(
        dest="cache_command", required=True
    )
    command(cache, "info", "sizes of the cache's parts", "mll-jax cache info", _run_cache_info, json_flag=True)
    clear = command(cache, "clear", "delete parts of the cache", "mll-jax cache clear jax oracles", _run_cache_clear)
    clear.add_argument("parts", nargs="*", help="parts to delete, as `cache info` names them")
    clear.add_argument("--all", action="store_true", help="delete everything, the hub included")
