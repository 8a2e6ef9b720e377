"""Where mll_jax keeps its files: `$MLL_JAX_CACHE` or ~/.cache/mll_jax."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("MLL_JAX_CACHE", "~/.cache/mll_jax")).expanduser()


def default_hub() -> Path:
    return cache_dir() / "hub"


def enable_compile_cache() -> None:
    """Keep XLA compilations on disk so repeated runs skip them."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
