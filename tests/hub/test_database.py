"""The hub's database: migration from registry.json (SQLite), the concept index, concurrent and killed writers."""

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from exact_cap import cap_mismatches

import mll_jax as mll
from mll_jax.concepts import task as task_lib
from mll_jax.configs import suite
from mll_jax.configs.selection import SelectionConfig
from mll_jax.hub import Hub, checkpoint, database, location, migration, sqlite
from mll_jax.labeling import rule, verify
from mll_jax.selection.candidates import candidates

TASKS = [list(t) for t in suite.DEMO_TASKS[:8]]


def format_one(hub: Hub, path):
    """`hub` copied to `path` as a format-1 hub (registry.json, every model an orbax directory), as
    releases before the database wrote it."""
    live = (sqlite.FILE, f"{sqlite.FILE}-wal", f"{sqlite.FILE}-shm")  # never read by a copy: see Hub.copy
    shutil.copytree(hub.path, path, ignore=shutil.ignore_patterns(*live))
    models = {}
    for model_id, entry in hub.entries.items():
        doc = entry.to_json() | {"labels_checksum": entry.labels_checksum}
        if doc.pop("stored", None) == "registry":
            checkpoint.save(path / "models" / model_id, hub.load_model(model_id))
        models[model_id] = doc
    backbones = {i: b.to_json() for i, b in hub.backbones.items()}
    legacy = {"format_version": 1, "store": hub.store_spec.to_json(), "models": models, "backbones": backbones}
    (path / "registry.json").write_text(json.dumps(legacy, indent=1))
    return legacy


@pytest.mark.sqlite_only
def test_format_one_hub_is_migrated_once_with_a_backup_and_selects_the_same(hub, tmp_path):
    legacy = format_one(hub, tmp_path / "old")
    migrated = Hub.open(tmp_path / "old")
    assert json.loads((tmp_path / "old" / migration.BACKUP).read_text()) == legacy
    pointer = json.loads((tmp_path / "old" / "registry.json").read_text())
    assert pointer["format_version"] == database.FORMAT_VERSION != 1  # older releases stop at this version check
    assert list(migrated.entries) == list(hub.entries)
    assert all(migrated.labels_valid(i) for i in migrated.entries)
    assert verify.verify(migrated) == []
    before = [s.to_json() for s in mll.select_many(hub, TASKS)]
    assert [s.to_json() for s in mll.select_many(migrated, TASKS)] == before
    dump = migrated.dump()
    assert Hub.open(tmp_path / "old").dump() == dump  # opened again: not migrated again


@pytest.mark.sqlite_only
def test_a_killed_migration_leaves_the_old_hub_and_the_next_open_finishes(hub, tmp_path):
    path = tmp_path / "old"
    legacy = format_one(hub, path)
    (path / f".{sqlite.FILE}.tmp").write_bytes(b"half a database")  # killed before the commit point
    assert list(Hub.open(path).entries) == list(legacy["models"])
    # killed after the commit point: the database is in place, registry.json still the old registry
    (path / "registry.json").write_text(json.dumps(legacy))
    (path / migration.BACKUP).unlink()
    reopened = Hub.open(path)
    assert json.loads((path / migration.BACKUP).read_text()) == legacy
    assert json.loads((path / "registry.json").read_text())["format_version"] == database.FORMAT_VERSION
    assert verify.verify(reopened) == []


def test_concept_index_holds_exactly_what_label_records_say(hub):
    concepts = hub.sdag.concept_nodes
    expected = set()
    for model_id in hub.ids("expert"):
        record = hub.labels(model_id)
        r = record["response"]
        for j, c in zip(*np.nonzero(r >= rule.FIRES_AT)):
            expected.add((concepts[c], model_id, int(j)))
    rows = hub.concept_rows(concepts)
    assert {(c, m, h) for c, m, h, _, _ in rows} == expected and len(rows) == len(expected)
    for concept, model, head, response, hits in rows:
        record = hub.labels(model)
        assert response == pytest.approx(float(record["response"][head, concepts.index(concept)]))
        assert hits == pytest.approx(float(record["confusion"][concepts.index(concept), head]))


def dense_candidates(hub: Hub, classes) -> list[list[tuple[str, tuple[int, ...]]]]:
    """The rule of method.md §3.2 computed from every label record (what the concept index must reproduce)."""
    column = {c: i for i, c in enumerate(hub.sdag.concept_nodes)}
    out = [[] for _ in classes]
    for model_id in hub.ids("expert"):
        fired = hub.labels(model_id)["response"] >= rule.FIRES_AT  # [H, concepts]
        on = np.stack([fired[:, [column[c] for c in cls.concepts]].any(1) for cls in classes], 1)  # [H, K]
        for k in range(len(classes)):
            heads = tuple(int(j) for j in np.flatnonzero(on[:, k] & (on.sum(1) == 1)))
            if heads:
                out[k].append((model_id, heads))
    return out


def test_candidates_from_the_index_equal_the_rule_on_every_record(hub):
    for names in TASKS:
        classes = task_lib.resolve(hub.sdag, names)
        got = candidates(hub, classes, SelectionConfig(patch_every_class=False, max_candidates=None))
        experts = [[(c.model, c.heads) for c in cs if c.model != hub.general_id] for cs in got]
        assert experts == dense_candidates(hub, classes), names


def as_format_two(path):
    """The hub's database put back in the layout format 2 wrote (no `fires_on`), on either backend."""
    with location.open_database(path)._transaction() as raw:
        raw.execute("DROP INDEX concept_index_by_hits")
        raw.execute("ALTER TABLE concept_index DROP COLUMN fires_on")
        raw.execute("CREATE INDEX concept_index_by_hits ON concept_index (concept, hits DESC)")
        raw.execute("UPDATE meta SET value = '2' WHERE key = 'format_version'")
    pointer = path / migration.LEGACY
    pointer.write_text(json.dumps(json.loads(pointer.read_text()) | {"format_version": 2}))


def test_a_format_two_database_is_upgraded_when_opened_and_selects_the_same(hub_copy):
    before, digest = [s.to_json() for s in mll.select_many(hub_copy, TASKS)], hub_copy.digest()
    db = location.open_database(hub_copy.path)
    read = "SELECT concept, model, head, fires_on FROM concept_index ORDER BY concept, model, head"
    written = [tuple(r) for r in db._query(read).fetchall()]
    for concept, model, head, fires_on in written:
        assert fires_on == database.fires_on(c for c, m, h, _ in written if (m, h) == (model, head))
        assert f" {concept} " in fires_on
    assert sum(f.count(" ") > 2 for *_, f in written) >= 10, "too few heads fire on two concepts to test this"
    as_format_two(hub_copy.path)
    assert "fires_on" not in db.columns("concept_index")
    reopened = Hub.open(hub_copy.path)
    assert db.meta("format_version") == str(database.FORMAT_VERSION) == "3"
    assert json.loads((hub_copy.path / migration.LEGACY).read_text())["format_version"] == 3  # older releases stop
    assert [tuple(r) for r in db._query(read).fetchall()] == written
    assert reopened.digest() == digest
    assert [s.to_json() for s in mll.select_many(reopened, TASKS)] == before


def test_fires_on_that_disagrees_with_its_rows_is_a_database_fault(hub_copy):
    assert verify.verify(hub_copy) == []
    db = location.open_database(hub_copy.path)
    with db._transaction() as raw:  # a hand edit: one row of a head that fires on several concepts
        raw.execute("UPDATE concept_index SET fires_on = ' x ' WHERE model = 'family-footwear' AND head = 0")
    faults = [f for f in verify.verify(Hub.open(hub_copy.path)) if f.kind == "database"]
    assert len(faults) == 1 and "model family-footwear, head 0" in faults[0].detail


def test_a_read_only_format_two_hub_is_refused_with_how_to_upgrade_it(hub_copy, monkeypatch):
    as_format_two(hub_copy.path)
    monkeypatch.setattr(location.os, "access", lambda path, mode: False)  # as root every directory is writable
    with pytest.raises(ValueError, match="open the hub once where its directory is writable"):
        Hub.open(hub_copy.path)
    monkeypatch.undo()
    assert "fires_on" in location.open_database(hub_copy.path).columns("concept_index")


@pytest.mark.parametrize("cap, fetch_factor", [(1, 1), (2, 1), (3, 1), (2, SelectionConfig.fetch_factor)])
def test_the_cap_keeps_the_candidates_with_most_evidence(hub, cap, fetch_factor):
    """Every development task: the capped lookup keeps what a full read ranks best (the 1,000-expert hub of
    `tests/test_scale.py` is where the read must grow)."""
    mismatches, trimmed = cap_mismatches(hub, suite.DEV_TASKS, cap, fetch_factor)
    assert mismatches == []
    assert trimmed >= 10, "the cap was tested on too few classes"


ADD_SCRIPT = textwrap.dedent(
    """
    import sys
    from mll_jax import nets
    from mll_jax.hub import Hub
    hub = Hub.open(sys.argv[1])
    spec = hub.entry("family-tops").input_spec
    for i in range(int(sys.argv[3])):
        if i % 2:  # heads over the shared backbone: rows in the database
            model = nets.build("linear", {"in_features": 128}, 2, seed=i)
            hub.add(f"{sys.argv[2]}-{i}", model, "linear", {"in_features": 128}, ["Sandal", "Sneaker"], spec,
                    backbone="family-cnn")
        else:  # whole models: orbax directories
            model = nets.build("mlp", {"hidden": [8]}, 2, seed=i)
            hub.add(f"{sys.argv[2]}-{i}", model, "mlp", {"hidden": [8]}, ["Sandal", "Sneaker"], spec)
    """
)


@pytest.mark.slow
@pytest.mark.sqlite_only  # on a server: test_backends.py's eight adders and two labellers
def test_four_processes_adding_25_models_each(hub_copy):
    before = set(hub_copy.entries)
    procs = [subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, str(hub_copy.path), name, "25"]) for name in "abcd"]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0, 0]
    reopened = Hub.open(hub_copy.path)
    added = set(reopened.entries) - before
    assert added == {f"{n}-{i}" for n in "abcd" for i in range(25)}
    assert {(f.kind, f.model) for f in verify.verify(reopened)} == {("unlabelled", m) for m in added}


def _selections(path) -> list[dict]:
    return [s.to_json() | {"seconds": None} for s in mll.select_many(Hub.open(path), TASKS)]


@pytest.mark.slow
def test_eight_adders_and_two_labellers_at_once_on_a_server(hub_copy, postgres, tmp_path):
    if postgres is None:
        pytest.skip("runs with --hub-backend postgresql (make test does)")
    before = set(hub_copy.entries)
    path = str(hub_copy.path)
    adders = [subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, path, f"w{n}", "25"]) for n in range(8)]
    time.sleep(5)  # the labellers start while the adders are at work
    label = [sys.executable, "-m", "mll_jax", "--hub", path, "label"]
    labellers = [subprocess.Popen(label) for _ in range(2)]
    assert [p.wait(timeout=900) for p in adders + labellers] == [0] * 10
    subprocess.run(label, check=True, timeout=900)  # what was added after the labellers had looked
    hub = Hub.open(path)
    added = set(hub.entries) - before
    assert added == {f"w{n}-{i}" for n in range(8) for i in range(25)}
    assert verify.verify(hub) == []  # every entry whole, every label record matches its checksum
    copy = shutil.copytree(path, tmp_path / "as-sqlite")
    location.move(copy, None)
    assert _selections(copy) == _selections(path)


def test_a_killed_add_leaves_every_entry_whole_and_a_rerun_completes(hub_copy):
    path = hub_copy.path
    proc = subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, str(path), "k", "40"])
    deadline = time.time() + 300
    while time.time() < deadline and len(Hub.open(path)) < len(hub_copy) + 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    added = len(Hub.open(path)) - len(hub_copy)
    assert 5 <= added < 40, "the kill should land mid-run"
    faults = verify.verify(Hub.open(path))
    # no entry is broken; a killed writer can leave only its staging folder or an unregistered checkpoint
    assert {f.kind for f in faults} <= {"unlabelled", "temporary file", "orphan checkpoint"}
    verify.repair(Hub.open(path), [f for f in faults if f.kind != "unlabelled"])
    subprocess.run([sys.executable, "-c", ADD_SCRIPT, str(path), "k", "40"], check=True, timeout=600)
    rerun = Hub.open(path)
    assert {f"k-{i}" for i in range(40)} <= set(rerun.entries)
    assert {f.kind for f in verify.verify(rerun)} == {"unlabelled"}


@pytest.mark.sqlite_only
def test_a_corrupt_database_is_found(hub_copy):
    hub_copy.close()  # the WAL checkpointed into the file
    path = hub_copy.path / sqlite.FILE
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[2 * page : 4 * page] = bytes(2 * page)  # zero two pages past the header
    path.write_bytes(bytes(raw))
    try:
        faults = verify.verify(Hub.open(hub_copy.path))
    except (ValueError, sqlite3.DatabaseError) as error:
        assert "registry.sqlite" in str(error) or "malformed" in str(error)
    else:
        assert any(f.kind == "database" for f in faults)


@pytest.mark.sqlite_only
def test_a_copy_made_while_the_hub_is_open_here_leaves_it_whole(hub_copy, tmp_path):
    """A plain copy of the SQLite file by a process that has the hub open drops that process's locks on it: another
    process's read then removes the -wal and -shm files under this one's writes ("disk I/O error", or a damaged
    file). `Hub.copy` reads the file through SQLite, so writes and reads that follow here and elsewhere go on."""
    experts = hub_copy.ids("expert")  # this process holds a connection
    assert hub_copy.copy(tmp_path / "copy").ids("expert") == experts
    family = hub_copy.entry("family-tops")
    reader = f"import mll_jax as mll; mll.Hub.open({str(hub_copy.path)!r}).ids('expert')"
    for i in range(3):
        writer = Hub.open(hub_copy.path)
        model = mll.nets.build("mlp", {"hidden": [8]}, 2, seed=i)
        writer.add(f"probe-{i}", model, "mlp", {"hidden": [8]}, ["Sandal", "Sneaker"], family.input_spec)
        subprocess.run([sys.executable, "-c", reader], check=True)  # another process reads and closes
        writer.remove(f"probe-{i}")
    assert Hub.open(hub_copy.path).ids("expert") == experts
    with sqlite3.connect(hub_copy.path / sqlite.FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with pytest.raises(FileExistsError, match="new folder"):
        hub_copy.copy(tmp_path / "copy")
