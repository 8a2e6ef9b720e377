"""The hub's registry in SQLite (method.md §2.1): models, backbones, small head parameters, the concept index.

One file, `registry.sqlite`, in WAL mode: readers never block the writer, and
each change (an add, a label record, a removal) is one transaction, so a killed
writer leaves the registry as it was before or after the change, never between.
Every change touches a bounded number of rows, so adding the 10,000th model costs
what adding the first did.

Hubs of format 1 keep their registry in `registry.json`; `migrate_json` turns one
into a database once, keeping the old file as `registry.v1.json` and leaving a
`registry.json` that tells older releases which format the hub has.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

FORMAT_VERSION = 2
FILE, LEGACY, BACKUP = "registry.sqlite", "registry.json", "registry.v1.json"
BUSY_TIMEOUT_S = 60.0  # concurrent writers wait for each other this long before an add fails

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of adding: `Hub.entries` order
    id TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    signature TEXT NOT NULL,                -- models with equal signatures run as one engine program
    entry TEXT NOT NULL,                    -- JSON: arch, config, heads, input_spec, params, checksum, ...
    labels_checksum TEXT,                   -- sha256 of labels/<id>.npz; NULL: not labelled
    label_problem TEXT                      -- '' usable; else why labelling excluded the model
);
CREATE INDEX IF NOT EXISTS models_by_signature ON models (signature, seq);
CREATE TABLE IF NOT EXISTS backbones (id TEXT PRIMARY KEY, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head_params (model TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS concept_index (
    concept TEXT NOT NULL,                  -- SDAG concept node
    model TEXT NOT NULL,
    head INTEGER NOT NULL,
    response REAL NOT NULL,                 -- r(head, concept), at least labeling.THRESHOLD
    hits REAL NOT NULL,                     -- share of the concept's store samples the head is the argmax on
    PRIMARY KEY (concept, model, head)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS concept_index_by_model ON concept_index (model);
CREATE INDEX IF NOT EXISTS concept_index_by_hits ON concept_index (concept, hits DESC);
"""


class Registry:
    """A connection to one hub's registry database (one per process: reopened after a fork)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._pid = -1

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self._db = _connect(self.path)
            self._pid = os.getpid()
        return self._db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change; BEGIN IMMEDIATE takes the write lock up front, so writers queue, not deadlock."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None

    # -- reading ----------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def models(self) -> dict[str, dict]:
        """Every model's entry, in the order they were added."""
        rows = self.db.execute("SELECT id, entry, labels_checksum FROM models ORDER BY seq").fetchall()
        return {i: _entry(entry, labels) for i, entry, labels in rows}

    def model(self, model_id: str) -> dict | None:
        row = self.db.execute("SELECT entry, labels_checksum FROM models WHERE id = ?", (model_id,)).fetchone()
        return _entry(*row) if row else None

    def ids(self, role: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM models WHERE role = ? ORDER BY seq", (role,))]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM models").fetchone()[0]

    def with_signature(self, signature: str) -> list[str]:
        rows = self.db.execute("SELECT id FROM models WHERE signature = ? ORDER BY seq", (signature,))
        return [r[0] for r in rows]

    def signature(self, model_id: str) -> str | None:
        row = self.db.execute("SELECT signature FROM models WHERE id = ?", (model_id,)).fetchone()
        return row[0] if row else None

    def backbones(self) -> dict[str, dict]:
        return {i: json.loads(e) for i, e in self.db.execute("SELECT id, entry FROM backbones ORDER BY id")}

    def head_params(self, model_id: str) -> bytes | None:
        row = self.db.execute("SELECT data FROM head_params WHERE model = ?", (model_id,)).fetchone()
        return row[0] if row else None

    def unlabelled(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM models WHERE labels_checksum IS NULL ORDER BY seq")]

    def problems(self) -> dict[str, str]:
        """Models labelling excluded, and why."""
        rows = self.db.execute("SELECT id, label_problem FROM models WHERE label_problem != '' ORDER BY seq")
        return dict(rows.fetchall())

    def largest_params(self) -> int:
        row = self.db.execute("SELECT MAX(json_extract(entry, '$.params')) FROM models").fetchone()
        return int(row[0] or 0)

    def concept_rows(self, concepts: Iterable[str]) -> list[tuple[str, str, int, float, float]]:
        """(concept, model, head, response, hits) of every usable expert head that fires on any of `concepts`."""
        concepts = sorted(set(concepts))
        marks = ",".join("?" * len(concepts))
        return self.db.execute(
            "SELECT c.concept, c.model, c.head, c.response, c.hits FROM concept_index c "
            "JOIN models m ON m.id = c.model "
            f"WHERE c.concept IN ({marks}) AND m.label_problem = '' ORDER BY m.seq, c.head, c.concept",
            concepts,
        ).fetchall()

    def dump(self) -> str:
        """The whole database as SQL text (to compare two states of a registry)."""
        return "\n".join(self.db.iterdump())

    def best_rows(self, concept: str, limit: int) -> list[tuple[str, int, float]]:
        """(model, head, hits) of the `limit` heads with the most hits on `concept` (an index range scan)."""
        rows = self.db.execute(
            "SELECT model, head, hits FROM concept_index WHERE concept = ? ORDER BY hits DESC, model, head LIMIT ?",
            (concept, limit),
        )
        return rows.fetchall()

    def firings(self, models: Iterable[str], concepts: Iterable[str]) -> list[tuple[str, str, int, float]]:
        """(concept, model, head, hits) of `models`' heads on any of `concepts`."""
        models, concepts = sorted(set(models)), sorted(set(concepts))
        return self.db.execute(
            f"SELECT concept, model, head, hits FROM concept_index WHERE model IN ({','.join('?' * len(models))}) "
            f"AND concept IN ({','.join('?' * len(concepts))})",
            [*models, *concepts],
        ).fetchall()

    def order(self, models: Iterable[str]) -> dict[str, int]:
        """Each model's position in the order models were added."""
        models = sorted(set(models))
        rows = self.db.execute(f"SELECT id, seq FROM models WHERE id IN ({','.join('?' * len(models))})", models)
        return dict(rows.fetchall())

    def integrity(self) -> list[str]:
        """What `PRAGMA integrity_check` finds wrong with the database file ([] if nothing)."""
        try:
            found = [r[0] for r in self.db.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            return [str(error)]
        return [] if found == ["ok"] else found

    # -- writing (each call is one transaction) ----------------------------------
    def put_model(self, model_id: str, entry: dict, signature: str, head_params: bytes | None = None) -> None:
        """Add `model_id` (replacing an older model of that id, its label rows and parameters)."""
        with self.transaction() as db:
            _delete_model(db, model_id)
            db.execute(
                "INSERT INTO models (id, role, signature, entry) VALUES (?, ?, ?, ?)",
                (model_id, entry["role"], signature, json.dumps(_stored(entry))),
            )
            if head_params is not None:
                db.execute("INSERT INTO head_params (model, data) VALUES (?, ?)", (model_id, head_params))

    def replace_entry(self, model_id: str, entry: dict) -> None:
        """Rewrite a model's entry in place, keeping its label state (repairs and tests)."""
        with self.transaction() as db:
            db.execute("UPDATE models SET entry = ? WHERE id = ?", (json.dumps(_stored(entry)), model_id))

    def remove_model(self, model_id: str) -> None:
        with self.transaction() as db:
            _delete_model(db, model_id)

    def put_backbone(self, backbone_id: str, entry: dict) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO backbones (id, entry) VALUES (?, ?)", (backbone_id, json.dumps(entry)))

    def set_labels(self, model_id: str, checksum: str | None, problem: str, rows: list[tuple]) -> None:
        """A model's label state and its concept index rows (concept, head, response, hits), replacing older ones."""
        with self.transaction() as db:
            db.execute("DELETE FROM concept_index WHERE model = ?", (model_id,))
            db.execute(
                "UPDATE models SET labels_checksum = ?, label_problem = ? WHERE id = ?",
                (checksum, problem if checksum is not None else None, model_id),
            )
            db.executemany(
                "INSERT INTO concept_index (concept, model, head, response, hits) VALUES (?, ?, ?, ?, ?)",
                [(c, model_id, int(h), float(r), float(a)) for c, h, r, a in rows],
            )


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a committed change survives a killed process
    return db


def _entry(text: str, labels_checksum: str | None) -> dict:
    entry = json.loads(text)
    if labels_checksum is not None:
        entry["labels_checksum"] = labels_checksum
    return entry


def _stored(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "labels_checksum"}  # a column of its own


def _delete_model(db: sqlite3.Connection, model_id: str) -> None:
    for table, column in (("models", "id"), ("head_params", "model"), ("concept_index", "model")):
        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (model_id,))


def _new_database(path: Path, store_spec: dict) -> Registry:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("format_version", str(FORMAT_VERSION)), ("store", json.dumps(store_spec))],
    )
    db.close()
    return Registry(path)


def create(directory: Path, store_spec: dict) -> Registry:
    """A new, empty registry database in `directory`, written under a temporary name and renamed into place."""
    tmp = _new_database(directory / f".{FILE}.tmp", store_spec)
    os.replace(tmp.path, directory / FILE)
    return Registry(directory / FILE)


def open_registry(directory: Path) -> Registry:
    """The registry of the hub in `directory`, with a clear error if it is not one this release reads."""
    path = directory / FILE
    registry = Registry(path)
    try:
        version = registry.meta("format_version")
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a readable registry database ({error}); restore it from a backup") from None
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{path} has format version {version}; this mll_jax reads version {FORMAT_VERSION}")
    if os.access(directory, os.W_OK):
        registry.db.executescript(SCHEMA)  # IF NOT EXISTS: adds what a database made by an earlier 2.x lacks
    return registry


def read_legacy(directory: Path) -> dict | None:
    """The format-1 registry in `registry.json`, or None if that file is the pointer a migration leaves."""
    path = directory / LEGACY
    try:
        legacy = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it or rebuild the hub") from None
    version = legacy.get("format_version")
    if version == FORMAT_VERSION:
        return None
    if version != 1:
        raise ValueError(f"{path} has format version {version}; this mll_jax reads versions 1 and {FORMAT_VERSION}")
    return legacy


def migrate_json(
    directory: Path,
    signature: Callable[[str, dict, dict], str],
    label_state: Callable[[str, dict], tuple[str | None, str, list[tuple]]],
) -> None:
    """Turn a format-1 hub's `registry.json` into `registry.sqlite`, once and atomically.

    The database is filled under a temporary name and renamed into place (the
    commit point: a killed migration leaves the old hub as it was); then the old
    file is kept as `registry.v1.json` and `registry.json` becomes a pointer that
    older releases reject with a format-version error. `signature(id, entry,
    backbones)` and `label_state(id, entry)` come from the hub, which knows models
    and label records.
    """
    legacy = read_legacy(directory)
    if legacy is not None and not (directory / FILE).exists():
        tmp_path = directory / f".{FILE}.tmp"
        staging = _new_database(tmp_path, legacy["store"])
        backbones = legacy.get("backbones", {})
        for backbone_id, entry in backbones.items():
            staging.put_backbone(backbone_id, entry)
        for model_id, entry in legacy["models"].items():
            staging.put_model(model_id, entry, signature(model_id, entry, backbones))
            checksum, problem, rows = label_state(model_id, entry)
            staging.set_labels(model_id, checksum, problem, rows)
        staging.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        staging.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp_path}{suffix}").unlink(missing_ok=True)
        os.replace(tmp_path, directory / FILE)
    if legacy is not None:  # also finishes a migration killed after its commit point
        backup = directory / f".{BACKUP}.tmp"
        backup.write_text((directory / LEGACY).read_text())
        os.replace(backup, directory / BACKUP)
        write_pointer(directory)


def write_pointer(directory: Path) -> None:
    """`registry.json` saying where the registry is: older releases read its version and stop with a clear error."""
    pointer = {
        "format_version": FORMAT_VERSION,
        "registry": FILE,
        "note": f"this hub's registry is the SQLite database {FILE}; it needs mll_jax with hub format {FORMAT_VERSION}",
    }
    tmp = directory / f".{LEGACY}.tmp"
    tmp.write_text(json.dumps(pointer, indent=1))
    os.replace(tmp, directory / LEGACY)
