"""The hub's database in SQLite (method.md §2.1): models, backbones, small head parameters, the concept index.

One file, `registry.sqlite` (the name hubs on disk have always used), in WAL mode:
readers never block the writer, and each change (an add, a label record, a
removal) is one transaction, so a killed writer leaves the database as it was
before or after the change, never between. Every change touches a bounded number
of rows, so adding the 10,000th model costs what adding the first did.

Only `Hub` talks to it; everyone else asks the hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from mll_jax.hub.entries import BackboneEntry, ModelEntry

__all__ = ["FILE", "FORMAT_VERSION", "Database", "create", "open_database"]

FORMAT_VERSION = 2
FILE = "registry.sqlite"
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
    response REAL NOT NULL,                 -- r(head, concept), at least labelling's firing threshold
    hits REAL NOT NULL,                     -- share of the concept's store samples the head is the argmax on
    PRIMARY KEY (concept, model, head)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS concept_index_by_model ON concept_index (model);
CREATE INDEX IF NOT EXISTS concept_index_by_hits ON concept_index (concept, hits DESC);
"""


class Database:
    """A connection to one hub's database (one per process: reopened after a fork)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._pid = -1

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self._db = _connect(self.path)
            self._pid = os.getpid()
        return self._db

    def _execute(self, sql: str, args=()) -> sqlite3.Cursor:
        return self._connection.execute(sql, args)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change; BEGIN IMMEDIATE takes the write lock up front, so writers queue, not deadlock."""
        db = self._connection
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close this process's connection, with the WAL checkpointed into the database file."""
        if self._db is not None and self._pid == os.getpid():
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        self._db = None

    def add_missing_tables(self) -> None:
        """Create what a database made by an earlier 2.x lacks (the schema says IF NOT EXISTS throughout)."""
        self._connection.executescript(SCHEMA)

    # -- reading ----------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def models(self) -> dict[str, ModelEntry]:
        """Every model's entry, in the order they were added."""
        rows = self._execute("SELECT id, entry, labels_checksum FROM models ORDER BY seq").fetchall()
        return {i: ModelEntry.from_json(i, json.loads(entry), labels) for i, entry, labels in rows}

    def model(self, model_id: str) -> ModelEntry | None:
        row = self._execute("SELECT entry, labels_checksum FROM models WHERE id = ?", (model_id,)).fetchone()
        return ModelEntry.from_json(model_id, json.loads(row[0]), row[1]) if row else None

    def ids(self, role: str) -> list[str]:
        return [r[0] for r in self._execute("SELECT id FROM models WHERE role = ? ORDER BY seq", (role,))]

    def count(self) -> int:
        return self._execute("SELECT COUNT(*) FROM models").fetchone()[0]

    def with_signature(self, signature: str) -> list[str]:
        rows = self._execute("SELECT id FROM models WHERE signature = ? ORDER BY seq", (signature,))
        return [r[0] for r in rows]

    def signature(self, model_id: str) -> str | None:
        row = self._execute("SELECT signature FROM models WHERE id = ?", (model_id,)).fetchone()
        return row[0] if row else None

    def backbones(self) -> dict[str, BackboneEntry]:
        rows = self._execute("SELECT id, entry FROM backbones ORDER BY id")
        return {i: BackboneEntry.from_json(i, json.loads(e)) for i, e in rows}

    def head_params(self, model_id: str) -> bytes | None:
        row = self._execute("SELECT data FROM head_params WHERE model = ?", (model_id,)).fetchone()
        return row[0] if row else None

    def unlabelled(self) -> list[str]:
        return [r[0] for r in self._execute("SELECT id FROM models WHERE labels_checksum IS NULL ORDER BY seq")]

    def excluded(self) -> dict[str, str]:
        """Models labelling excluded, and why."""
        rows = self._execute("SELECT id, label_problem FROM models WHERE label_problem != '' ORDER BY seq")
        return dict(rows.fetchall())

    def largest_params(self) -> int:
        row = self._execute("SELECT MAX(json_extract(entry, '$.params')) FROM models").fetchone()
        return int(row[0] or 0)

    def concept_rows(self, concepts: Iterable[str]) -> list[tuple[str, str, int, float, float]]:
        """(concept, model, head, response, hits) of every usable expert head that fires on any of `concepts`."""
        concepts = sorted(set(concepts))
        marks = ",".join("?" * len(concepts))
        return self._execute(
            "SELECT c.concept, c.model, c.head, c.response, c.hits FROM concept_index c "
            "JOIN models m ON m.id = c.model "
            f"WHERE c.concept IN ({marks}) AND m.label_problem = '' ORDER BY m.seq, c.head, c.concept",
            concepts,
        ).fetchall()

    def dump(self) -> str:
        """The whole database as SQL text (to compare two states of a hub)."""
        return "\n".join(self._connection.iterdump())

    def best_rows(self, concept: str, limit: int) -> list[tuple[str, int, float]]:
        """(model, head, hits) of the `limit` heads with the most hits on `concept` (an index range scan)."""
        rows = self._execute(
            "SELECT model, head, hits FROM concept_index WHERE concept = ? ORDER BY hits DESC, model, head LIMIT ?",
            (concept, limit),
        )
        return rows.fetchall()

    def firings(self, models: Iterable[str], concepts: Iterable[str]) -> list[tuple[str, str, int, float]]:
        """(concept, model, head, hits) of `models`' heads on any of `concepts`."""
        models, concepts = sorted(set(models)), sorted(set(concepts))
        return self._execute(
            f"SELECT concept, model, head, hits FROM concept_index WHERE model IN ({','.join('?' * len(models))}) "
            f"AND concept IN ({','.join('?' * len(concepts))})",
            [*models, *concepts],
        ).fetchall()

    def order(self, models: Iterable[str]) -> dict[str, int]:
        """Each model's position in the order models were added."""
        models = sorted(set(models))
        rows = self._execute(f"SELECT id, seq FROM models WHERE id IN ({','.join('?' * len(models))})", models)
        return dict(rows.fetchall())

    def integrity(self) -> list[str]:
        """What `PRAGMA integrity_check` finds wrong with the database file ([] if nothing)."""
        try:
            found = [r[0] for r in self._execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            return [str(error)]
        return [] if found == ["ok"] else found

    # -- writing (each call is one transaction) ----------------------------------
    def put_model(self, entry: ModelEntry, signature: str, head_params: bytes | None = None) -> None:
        """Add `entry` (replacing an older model of its id, that model's label rows and parameters)."""
        with self._transaction() as db:
            _delete_model(db, entry.id)
            db.execute(
                "INSERT INTO models (id, role, signature, entry) VALUES (?, ?, ?, ?)",
                (entry.id, entry.role, signature, json.dumps(entry.to_json())),
            )
            if head_params is not None:
                db.execute("INSERT INTO head_params (model, data) VALUES (?, ?)", (entry.id, head_params))

    def replace_entry(self, entry: ModelEntry) -> None:
        """Rewrite a model's entry in place, keeping its label state (repairs and tests)."""
        with self._transaction() as db:
            db.execute("UPDATE models SET entry = ? WHERE id = ?", (json.dumps(entry.to_json()), entry.id))

    def remove_model(self, model_id: str) -> None:
        with self._transaction() as db:
            _delete_model(db, model_id)

    def put_backbone(self, entry: BackboneEntry) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO backbones (id, entry) VALUES (?, ?)", (entry.id, json.dumps(entry.to_json()))
            )

    def set_labels(self, model_id: str, checksum: str | None, excluded: str, rows: list[tuple]) -> None:
        """A model's label state (its record's checksum, why it is excluded or '') and its concept index rows
        (concept, head, response, hits), replacing older ones."""
        with self._transaction() as db:
            db.execute("DELETE FROM concept_index WHERE model = ?", (model_id,))
            db.execute(
                "UPDATE models SET labels_checksum = ?, label_problem = ? WHERE id = ?",
                (checksum, excluded if checksum is not None else None, model_id),
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


def _delete_model(db: sqlite3.Connection, model_id: str) -> None:
    for table, column in (("models", "id"), ("head_params", "model"), ("concept_index", "model")):
        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (model_id,))


def new_file(path: Path, store_spec: dict) -> Database:
    """An empty database at `path` (replacing any file there), holding the format version and the store spec."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("format_version", str(FORMAT_VERSION)), ("store", json.dumps(store_spec))],
    )
    db.close()
    return Database(path)


def create(directory: Path, store_spec: dict) -> Database:
    """A new, empty database in `directory`, written under a temporary name and renamed into place."""
    tmp = new_file(directory / f".{FILE}.tmp", store_spec)
    os.replace(tmp.path, directory / FILE)
    return Database(directory / FILE)


def open_database(directory: Path) -> Database:
    """The database of the hub in `directory`, with a clear error if it is not one this release reads."""
    path = directory / FILE
    database = Database(path)
    try:
        version = database.meta("format_version")
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a readable hub database ({error}); restore it from a backup") from None
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{path} has format version {version}; this mll_jax reads version {FORMAT_VERSION}")
    if os.access(directory, os.W_OK):
        database.add_missing_tables()
    return database
