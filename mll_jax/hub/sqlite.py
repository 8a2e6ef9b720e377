"""The SQLite backend: the hub's database as one file in its directory, the default (method.md §2.1).

WAL mode: readers never block the writer; `synchronous = NORMAL`, so a committed
change survives a killed process. `BEGIN IMMEDIATE` takes the write lock up front,
so writers queue rather than deadlock. One host at a time: SQLite's locks are not
safe on network file systems (a hub shared by several hosts lives on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from mll_jax.hub import files
from mll_jax.hub.database import Database

__all__ = ["FILE", "SQLiteDatabase", "new_file"]

FILE = "registry.sqlite"  # the name hubs on disk have always used
BUSY_TIMEOUT_S = 60.0  # concurrent writers wait for each other this long before an add fails

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of adding: `Hub.entries` order
    id TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    signature TEXT NOT NULL,                -- models with equal signatures run as one engine program
    entry TEXT NOT NULL,                    -- JSON: arch, config, heads, input_spec, params, checksum, ...
    labels_checksum TEXT,                   -- sha256 of labels/<id>.npz (NULL: not labelled)
    label_problem TEXT                      -- '' usable, else why labelling excluded the model
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
    fires_on TEXT NOT NULL DEFAULT '',      -- ' a b ': every concept the head has a row for (`database.fires_on`)
    PRIMARY KEY (concept, model, head)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS concept_index_by_model ON concept_index (model);
-- fires_on in the key: a scan by hits tests a head without reading the table (`Database.valid_rows`)
CREATE INDEX IF NOT EXISTS concept_index_by_hits ON concept_index (concept, hits DESC, fires_on);
"""


class SQLiteDatabase(Database):
    """The database file `path` of the hub in `path.parent`."""

    backend = "sqlite"
    LARGEST_PARAMS = "SELECT MAX(json_extract(entry, '$.params')) FROM models"
    SCHEMA = SCHEMA

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.location = str(self.path)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a committed change survives a killed process
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # an I/O error may have ended it already: let that error, not this, be seen
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return files.locked(self.path.parent)

    def close(self) -> None:
        """Close this process's connection, with the WAL checkpointed into the database file."""
        if self._db is not None and self._pid == os.getpid():
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        super().close()

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self._query(f"PRAGMA table_info({table})")]

    def integrity(self) -> list[str]:
        """What `PRAGMA integrity_check` finds wrong with the database file ([] if nothing)."""
        try:
            found = [r[0] for r in self._query("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            return [str(error)]
        return ([] if found == ["ok"] else found) + self.fires_on_faults()


def new_file(path: Path) -> SQLiteDatabase:
    """An empty database with the schema at `path` (replacing any file there)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    database = SQLiteDatabase(path)
    database.create_tables()
    return database
