"""`mll-jax`, the command line: one module per group of subcommands, each with its `add_<command>`."""

from mll_jax.cli.main import main, parser

__all__ = ["main", "parser"]
