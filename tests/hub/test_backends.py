"""Both backends: a hub moved SQLite -> PostgreSQL -> SQLite selects the same; a writer killed inside a
transaction leaves nothing behind (many writers at once: test_database.py).

The server tests run under `pytest --hub-backend postgresql` and `postgresql-pooled` (as `make test`
does), on the throw-away cluster the session starts; the killed-transaction test runs on every backend.
"""

import json
import signal
import subprocess
import sys
import textwrap

import pytest

import mll_jax as mll
from mll_jax.configs import suite
from mll_jax.hub import Hub, location

TASKS = [list(t) for t in suite.DEV_TASKS[:6]]


def needs_server(postgres):
    if postgres is None:
        pytest.skip("runs with --hub-backend postgresql (make test does)")


def selections(path) -> list[dict]:
    hub = Hub.open(path)
    return [s.to_json() | {"seconds": None} for s in mll.select_many(hub, TASKS)]


def test_a_hub_moved_to_postgresql_and_back_selects_the_same(sqlite_hub_path, postgres, tmp_path):
    needs_server(postgres)
    path = Hub.open(sqlite_hub_path).copy(tmp_path / "hub").path
    before, digest = selections(path), Hub.open(path).digest()
    url = postgres.url()
    moved_from, moved_to = location.move(path, url)
    on_server = Hub.open(path)
    assert on_server.database == moved_to != moved_from and moved_to.startswith("postgresql://")
    assert (path / location.MOVED).is_file() and not (path / "registry.sqlite").exists()
    assert selections(path) == before
    location.move(path, None)
    back = Hub.open(path)
    assert back.database.endswith("registry.sqlite") and not (path / location.POINTER).exists()
    assert back.digest() == digest
    assert selections(path) == before
    with pytest.raises(ValueError, match="already uses"):
        location.move(path, None)
    with pytest.raises(FileExistsError, match="already holds a hub"):
        location.move(path, url)  # the server database still holds the first move's rows
    assert Hub.open(path).database.endswith("registry.sqlite")  # a refused move changes nothing


def test_a_hub_reached_through_another_route_keeps_its_rows(sqlite_hub_path, postgres, tmp_path, capsys):
    needs_server(postgres)
    from mll_jax import cli
    from mll_jax.hub import postgres_local

    path = Hub.open(sqlite_hub_path).copy(tmp_path / "hub").path
    with pytest.raises(ValueError, match="keeps its rows in SQLite"):
        location.reach(path, postgres.url())
    url = postgres.url()
    location.move(path, url)
    before, pointer = selections(path), (path / location.POINTER).read_text()
    with pytest.raises(ValueError, match="does not hold the rows of the hub"):
        location.reach(path, postgres.url())  # an empty database of the same server
    assert (path / location.POINTER).read_text() == pointer  # a refused route changes nothing
    pooled = f"&port={postgres_local.POOLER_PORT}"
    other = url.replace(pooled, "") if postgres.pooled else f"{url}&port=5432"  # around the pooler, or named port
    assert cli.main(["--hub", str(path), "hub", "reach", other]) == 0
    assert "digests equal" in capsys.readouterr().out
    assert Hub.open(path).database == other != url
    assert selections(path) == before


def test_hub_migrate_command(sqlite_hub_path, postgres, tmp_path, capsys):
    needs_server(postgres)
    from mll_jax import cli

    path = Hub.open(sqlite_hub_path).copy(tmp_path / "hub").path
    assert cli.main(["--hub", str(path), "hub", "migrate", "--to", postgres.url()]) == 0
    assert "digests equal" in capsys.readouterr().out
    assert cli.main(["--hub", str(path), "hub", "migrate", "--to", "mysql://nowhere"]) == 2
    assert "not a PostgreSQL URL" in capsys.readouterr().err
    assert Hub.open(path).database.startswith("postgresql://")


KILLED = textwrap.dedent(
    """
    import sys, time
    from mll_jax.hub import Hub
    hub = Hub.open(sys.argv[1])
    entry = hub.entry("footwear-cnn")
    with hub._db._transaction() as db:
        db.execute("DELETE FROM concept_index WHERE model = ?", ("footwear-cnn",))
        db.execute("UPDATE models SET labels_checksum = NULL WHERE id = ?", ("footwear-cnn",))
        print("inside", flush=True)
        time.sleep(600)
    """
)


def test_a_writer_killed_inside_a_transaction_leaves_nothing_behind(hub_copy):
    dump = hub_copy.dump()
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(hub_copy.path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    hub = Hub.open(hub_copy.path)
    assert hub.dump() == dump
    entry = hub.entry("footwear-cnn")
    hub.add("after-kill", hub.load_model("footwear-cnn"), "cnn", entry.config, list(entry.heads), entry.input_spec)
    assert "after-kill" in Hub.open(hub_copy.path).entries  # the lock and the database are free again


def test_a_pointer_to_nothing_is_a_clear_error(hub_copy):
    (hub_copy.path / location.POINTER).write_text(json.dumps({"backend": "postgresql"}))
    with pytest.raises(ValueError, match="should be"):
        Hub.open(hub_copy.path)
    (hub_copy.path / location.POINTER).write_text(json.dumps({"url": "postgresql://mll@/none?host=/nonexistent"}))
    with pytest.raises(ConnectionError, match="cannot reach the hub database"):
        Hub.open(hub_copy.path)
