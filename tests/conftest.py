"""Shared fixtures: one real demo hub (trained experts, real checkpoints) per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Everything the tests write (WordNet copy, oracles, compile cache, the hub) goes to a fresh folder;
# MLL_JAX_TEST_CACHE names one to keep between local runs instead (CI never sets it).
os.environ["MLL_JAX_CACHE"] = os.environ.get("MLL_JAX_TEST_CACHE") or tempfile.mkdtemp(prefix="mll_jax_test_cache_")


def pytest_configure(config):
    """Compiled programs go to the test cache's disk cache, so the CLI and multi-process tests reuse them."""
    from mll_jax import paths

    paths.enable_compile_cache()


@pytest.fixture(scope="session")
def hub_path() -> Path:
    """The demo hub, built where `Hub.open()` looks by default (inside the test cache)."""
    from mll_jax import labeling, paths, zoo

    path = paths.default_hub()
    labeling.label(zoo.build(path))
    return path


@pytest.fixture(scope="session")
def hub(hub_path):
    from mll_jax.hub import Hub

    return Hub.open(hub_path)


@pytest.fixture
def hub_copy(hub_path, tmp_path):
    """A private copy of the session hub, for tests that change it."""
    from mll_jax.hub import Hub

    return Hub.open(shutil.copytree(hub_path, tmp_path / "hub"))


@pytest.fixture(scope="session")
def test_split():
    from mll_jax import data

    return data.load("fashion_mnist", "test")
