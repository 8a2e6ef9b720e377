"""Where mll_jax keeps its files: `$MLL_JAX_CACHE` or ~/.cache/mll_jax."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "cache_dir",
    "cache_parts",
    "clear_cache",
    "default_compile_cache",
    "default_hub",
    "enable_compile_cache",
    "exclusive",
]


def cache_dir() -> Path:
    return Path(os.environ.get("MLL_JAX_CACHE", "~/.cache/mll_jax")).expanduser()


def default_hub() -> Path:
    return cache_dir() / "hub"


def enable_compile_cache() -> None:
    """Keep XLA compilations on disk so repeated runs skip them.

    Before jax is imported this only sets the environment variables jax reads its settings from, so a
    command that never runs jax (`--help`, `cache info`, `sdag show`) does not import it; after, it
    updates jax's config.
    """
    settings = {
        "jax_compilation_cache_dir": str(cache_dir() / "jax"),
        # Low: a classifier is made of many small programs (20-100 ms to compile on CPU, 1-3 ms to read back).
        "jax_persistent_cache_min_compile_time_secs": 0.02,
    }
    if "jax" not in sys.modules:
        os.environ.update({name.upper(): str(value) for name, value in settings.items()})
        return
    import jax

    for name, value in settings.items():
        jax.config.update(name, value)


_NO_COMPILE_CACHE = "MLL_JAX_NO_COMPILE_CACHE"  # set to 1: mll_jax leaves jax's compilation cache alone


def default_compile_cache() -> None:
    """The compile cache, on for every user of the library (`import mll_jax`), unless they opted out
    (`MLL_JAX_NO_COMPILE_CACHE=1`) or configured jax's cache themselves."""
    if os.environ.get(_NO_COMPILE_CACHE, "") not in ("", "0"):
        return
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    if "jax" in sys.modules and sys.modules["jax"].config.jax_compilation_cache_dir:
        return
    enable_compile_cache()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cache_parts() -> dict[str, int]:
    """Each top-level entry of the cache directory and its size in bytes (not its lock or other hidden files)."""
    root = cache_dir()
    return {p.name: _size(p) for p in sorted(root.iterdir()) if not p.name.startswith(".")} if root.is_dir() else {}


def clear_cache(parts: list[str]) -> list[str]:
    """Delete the named top-level entries of the cache directory; returns what was deleted."""
    import shutil

    present = cache_parts()
    unknown = [p for p in parts if p not in present]
    if unknown:
        raise ValueError(f"no {unknown} in the cache {cache_dir()}; it holds {sorted(present) or 'nothing'}")
    for part in parts:
        path = cache_dir() / part
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return parts


@contextlib.contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold `directory`'s lock (its `.lock` file, made with the directory if missing) while the block runs: one
    process at a time, the others wait. Writers of a shared file take it, so two processes never make it at once."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
