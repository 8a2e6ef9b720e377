"""What every subcommand shares: the subparser with an example, `--hub`, JSON and plot output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mll_jax import paths

__all__ = ["add_hub_option", "command", "open_hub", "plain", "show"]


def command(sub, name: str, help: str, example: str, run=None, json_flag: bool = False) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with an example; it takes `--hub`, and `json_flag` adds --json (print JSON)."""
    cmd = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_hub_option(cmd, default=argparse.SUPPRESS)  # after the subcommand too; absent, the top-level value stands
    if run is not None:
        cmd.set_defaults(run=run)
    if json_flag:
        cmd.add_argument("--json", action="store_true", help="print JSON")
    return cmd


def add_hub_option(parser: argparse.ArgumentParser, default=None) -> None:
    parser.add_argument(
        "--hub",
        default=str(paths.default_hub()) if default is None else default,
        help=f"hub directory (default: {paths.default_hub()})",
    )


def open_hub(args):
    from mll_jax.hub import Hub

    return Hub.open(args.hub)


def show(args, result: dict, table: str, plot) -> None:
    """Print an experiment's table; write its JSON and plot where `--json` / `--plot` ask."""
    print(table)
    if args.json:
        _write_json(result, Path(args.json))
    if args.plot:
        plot(result, Path(args.plot))
        print(f"wrote {args.plot}")


def plain(value):
    """JSON for numpy scalars and tuples."""
    return value.item() if hasattr(value, "item") else list(value)


def _write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
