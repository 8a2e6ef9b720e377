"""Where mll_jax keeps its files: `$MLL_JAX_CACHE` or ~/.cache/mll_jax."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("MLL_JAX_CACHE", "~/.cache/mll_jax")).expanduser()


def default_hub() -> Path:
    return cache_dir() / "hub"
