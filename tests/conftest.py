"""Shared fixtures: one real demo hub (trained experts, real checkpoints) per test session.

`--hub-backend postgresql` keeps the hubs' rows on a real PostgreSQL server that the
session starts (a throw-away cluster), `--hub-backend postgresql-pooled` on that
server reached through a session-mode PgBouncer; `make test` runs the store and
selection tests both ways too. Tests marked `sqlite_only` (the SQLite file itself) or
`store_independent` (nothing the backend affects) skip there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Everything the tests write (WordNet copy, oracles, compile cache, the hub) goes to a fresh folder;
# MLL_JAX_TEST_CACHE names one to keep between runs instead (`make test` sets a new one for its two runs).
# The data packages fetched from registries (`mll-jax sources fetch`, run by `make setup`) are installed files, not
# results: the tests read the user's own, linked into the test cache.
_SOURCES = Path(os.environ.get("MLL_JAX_CACHE", "~/.cache/mll_jax")).expanduser() / "sources"
os.environ["MLL_JAX_CACHE"] = os.environ.get("MLL_JAX_TEST_CACHE") or tempfile.mkdtemp(prefix="mll_jax_test_cache_")
if _SOURCES.is_dir() and not Path(os.environ["MLL_JAX_CACHE"], "sources").exists():
    Path(os.environ["MLL_JAX_CACHE"]).mkdir(parents=True, exist_ok=True)
    Path(os.environ["MLL_JAX_CACHE"], "sources").symlink_to(_SOURCES)


def pytest_addoption(parser):
    backends = ("sqlite", "postgresql", "postgresql-pooled")
    parser.addoption("--hub-backend", choices=backends, default="sqlite", help="where hubs keep rows")


def pytest_itemcollected(item):
    # Under `pytest -n --dist loadgroup` a group (a file's tests that need the demo hub, or those that do not) runs
    # on one worker, so a file's session fixtures are built once. pytest-xdist turns these marks into groups by
    # rewriting each test's `_nodeid`, which pytest 9 no longer reads: the test extra pins pytest 8.
    needs_hub = "sqlite_hub_path" in item.fixturenames
    group = f"{item.path.relative_to(item.config.rootpath)}{'' if needs_hub else ' (no hub)'}"
    item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_modifyitems(config, items):
    # Groups in order: the hub-free ones first, so while one worker builds the hub the other works; then the files
    # with slow tests, so that no long test starts last.
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: ("sqlite_hub_path" in item.fixturenames, item.path not in slow_files))
    if config.getoption("--hub-backend") != "sqlite":
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="about the SQLite file itself"))
            if "store_independent" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="checks nothing the hub's backend affects; run with SQLite"))


def pytest_configure(config):
    """Compiled programs go to the test cache's disk cache, so the CLI and multi-process tests reuse them."""
    from mll_jax import paths

    paths.enable_compile_cache()


@pytest.fixture(scope="session")
def sqlite_hub_path() -> Path:
    """The demo hub, built where `Hub.open()` looks by default (inside the test cache), its rows in SQLite.
    Test sessions sharing one test cache: one builds it while the others wait, then find it built."""
    from mll_jax import labeling, paths, zoo

    path = paths.default_hub()
    with paths.exclusive(path.parent):
        hub = zoo.build(path)
        # A kept test cache's labels may come from older engine code. Labelling code that changed is allowed to
        # move a probability by a float16 step, and the tests that compare a fresh labelling with these records
        # bit for bit would then fail on a reused cache only (CI always starts from an empty one).
        stamp, code = path.parent / "hub.labelled-by", _labelling_code()
        # Forcing costs nothing on a new cache: every model needs its labels there anyway.
        labeling.label(hub, force=not stamp.exists() or stamp.read_text() != code)
        stamp.write_text(code)
    return path


def _labelling_code() -> str:
    """A digest of the code that computes label records: the engine's (its tuning key) and labelling's own."""
    import mll_jax
    from mll_jax import exported
    from mll_jax.engine import tuning

    labeling_files = sorted((Path(mll_jax.__file__).parent / "labeling").glob("*.py"))
    return f"{tuning.code_version()}|labeling {exported.source_digest(labeling_files)}"


@pytest.fixture(scope="session")
def postgres(request):
    """A throw-away PostgreSQL cluster for the session (its URLs through a pooler if the backend says so), or
    None when hubs use SQLite."""
    backend = request.config.getoption("--hub-backend")
    if backend == "sqlite":
        yield None
        return
    from mll_jax.hub.postgres_local import LocalCluster

    with LocalCluster(pooler=backend == "postgresql-pooled") as cluster:
        yield cluster


def on_backend(sqlite_path: Path, target: Path, postgres) -> Path:
    """A copy of the SQLite hub at `sqlite_path` in `target`, its rows moved to a new database of `postgres`
    (the copy stays on SQLite when `postgres` is None)."""
    from mll_jax.hub import location

    # Its SQLite file by the backup API: another worker reading the hub makes and removes its -wal and -shm files
    # while a plain copy runs, and the backup is a consistent snapshot whatever they hold.
    location.copy(sqlite_path, target)
    if postgres is not None:
        location.move(target, postgres.url())
    return target


@pytest.fixture(scope="session")
def hub_path(sqlite_hub_path, postgres, tmp_path_factory) -> Path:
    """The demo hub on the session's backend."""
    if postgres is None:
        return sqlite_hub_path
    return on_backend(sqlite_hub_path, tmp_path_factory.mktemp("pg") / "hub", postgres)


@pytest.fixture(scope="session")
def hub(hub_path):
    from mll_jax.hub import Hub

    return Hub.open(hub_path)


@pytest.fixture
def hub_copy(sqlite_hub_path, postgres, tmp_path):
    """A private copy of the session hub on the session's backend, for tests that change it."""
    from mll_jax.hub import Hub

    return Hub.open(on_backend(sqlite_hub_path, tmp_path / "hub", postgres))


@pytest.fixture(scope="session")
def test_split():
    from mll_jax import data

    return data.load("fashion_mnist", "test")


@pytest.fixture
def own_program_store(monkeypatch, tmp_path) -> Iterator[Path]:
    """A cache of this test's own whose program store starts as a copy of the session's, for a test that damages
    stored programs while other workers read theirs; the compile cache, text files and oracles stay shared."""
    from mll_jax import paths
    from mll_jax.selection import programs

    shared = paths.cache_dir()
    own = tmp_path / "cache"
    own.mkdir()
    for part in ("jax", "text", "engine", "oracles"):
        (shared / part).mkdir(parents=True, exist_ok=True)
        (own / part).symlink_to(shared / part)
    if (shared / "programs").is_dir():
        shutil.copytree(shared / "programs", own / "programs", ignore=shutil.ignore_patterns(".*.tmp"))
    monkeypatch.setenv("MLL_JAX_CACHE", str(own))
    programs.forget()
    yield own / "programs"
    programs.forget()
