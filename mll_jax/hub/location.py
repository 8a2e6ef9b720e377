"""Where a hub's database lives: a SQLite file in the hub directory (the default), or a PostgreSQL
database named by `database.json` in that directory (method.md §2.1).

The hub directory is always the root of its files (checkpoints, label records,
SDAG), which every host sharing the hub reads; only the rows move to a server.
`move` copies a hub's rows to the other backend, checks the copy's digest, and
only then switches the hub over.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from mll_jax.hub import database, migration, sqlite
from mll_jax.hub.database import FORMAT_VERSION, UPGRADABLE_VERSION, Database
from mll_jax.hub.postgres import PostgresDatabase, is_url

__all__ = ["POINTER", "copy", "create", "exists", "move", "open_database", "reach"]

POINTER = "database.json"  # {"backend": "postgresql", "url": ...}: the hub's rows are on that server
MOVED = f"{sqlite.FILE}.moved"  # a SQLite database whose rows went to a server, kept as it was


def exists(directory: Path) -> bool:
    return (directory / POINTER).is_file() or (directory / sqlite.FILE).is_file()


def _pointed(directory: Path) -> Database:
    path = directory / POINTER
    try:
        doc = json.loads(path.read_text())
        if doc.get("backend", "postgresql") != "postgresql":
            raise KeyError(f"backend {doc['backend']!r}")
        return PostgresDatabase(doc["url"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f'{path} should be {{"backend": "postgresql", "url": "postgresql://..."}} ({error!r}); fix it '
            "or remove it to use the hub's SQLite file"
        ) from None


def _at(directory: Path) -> Database:
    return _pointed(directory) if (directory / POINTER).is_file() else sqlite.SQLiteDatabase(directory / sqlite.FILE)


def open_database(directory: Path) -> Database:
    """The database of the hub in `directory`, with a clear error if it is not one this release reads."""
    db = _at(directory)
    try:
        version = db.meta("format_version")
    except ConnectionError:
        raise
    except Exception as error:  # sqlite3 or psycopg: the file or server is not a hub database
        raise ValueError(f"{db.location} is not a readable hub database ({error}); restore it from a backup") from None
    if version == str(UPGRADABLE_VERSION):
        if not os.access(directory, os.W_OK):
            raise ValueError(
                f"{db.location} has format version {UPGRADABLE_VERSION}, which this mll_jax upgrades to "
                f"{FORMAT_VERSION} in place (one transaction; no row changes but each head's concept list): open "
                "the hub once where its directory is writable, then read it from anywhere"
            )
        db.upgrade()
        if (directory / migration.LEGACY).is_file():  # a pointer a migration left: older releases read it first
            migration.write_pointer(directory)
    elif version != str(FORMAT_VERSION):
        raise ValueError(
            f"{db.location} has format version {version}; this mll_jax reads version {FORMAT_VERSION} (and "
            f"upgrades {UPGRADABLE_VERSION})"
        )
    return db


def _fresh(url: str | None, directory: Path) -> Database:
    """An empty database with the schema: a server's (which must hold no hub yet), or a SQLite file under a
    temporary name."""
    if url is None:
        return sqlite.new_file(directory / f".{sqlite.FILE}.tmp")
    db = PostgresDatabase(url)
    db.create_tables()
    if db.meta("format_version") is not None:
        raise FileExistsError(f"{db.location} already holds a hub; give each hub a database of its own")
    return db


def _point(directory: Path, db: Database) -> None:
    """Switch the hub in `directory` to `db` (the commit point of a create or a move)."""
    if isinstance(db, PostgresDatabase):
        tmp = directory / f".{POINTER}.tmp"
        tmp.write_text(json.dumps({"backend": db.backend, "url": db.url}, indent=1))
        os.replace(tmp, directory / POINTER)
    else:
        db.close()
        os.replace(db.path, directory / sqlite.FILE)
        (directory / POINTER).unlink(missing_ok=True)


def create(directory: Path, store_spec: dict, url: str | None = None, settings: dict | None = None) -> Database:
    """A new, empty hub database for `directory`: a SQLite file, or the PostgreSQL database at `url`; `settings`
    (name -> JSON-able, e.g. the labelling rule) written beside the store's spec."""
    db = _fresh(url, directory)
    meta = {"format_version": str(FORMAT_VERSION), "store": json.dumps(store_spec)}
    db.put_meta(meta | {name: json.dumps(value) for name, value in (settings or {}).items()})
    _point(directory, db)
    return _at(directory)


def move(directory: Path, url: str | None) -> tuple[str, str]:
    """Copy the rows of the hub in `directory` to the PostgreSQL database at `url` (None: to a SQLite file in
    the directory), check the copy's digest, then switch the hub to it. Returns (from, to) locations.

    The source is left as it was: a SQLite file is kept as `registry.sqlite.moved`; a server's tables stay
    on the server."""
    if url is not None and not is_url(url):
        raise ValueError(f"{url!r} is not a PostgreSQL URL; write postgresql://user@host:port/dbname, or sqlite")
    source = open_database(directory)
    with source.locked():
        if url is None and source.backend == "sqlite" or url is not None and getattr(source, "url", None) == url:
            raise ValueError(f"the hub in {directory} already uses {source.location}")
        target = _fresh(url, directory)
        try:
            database.copy(source, target)
        except BaseException:
            _discard(target)  # the hub still uses its source; a retry starts from an empty target again
            raise
        _point(directory, target)  # the commit point: from here on the hub uses the target
        if source.backend == "sqlite":
            source.close()
            os.replace(directory / sqlite.FILE, directory / MOVED)
    return source.location, _at(directory).location


def reach(directory: Path, url: str) -> tuple[str, str]:
    """Reach the rows of the hub in `directory`, on a server, through `url`: another route to the same database
    (a connection pooler in front of the server, a new host name). Refused unless the database there holds this
    hub's rows (equal digests, read while the hub's write lock is held). Returns (from, to) locations."""
    if not is_url(url):
        raise ValueError(f"{url!r} is not a PostgreSQL URL; write postgresql://user@host:port/dbname")
    if not (directory / POINTER).is_file():
        raise ValueError(
            f"the hub in {directory} keeps its rows in SQLite; move them to a server first (`mll-jax hub migrate`)"
        )
    source = open_database(directory)
    there = PostgresDatabase(url)
    with source.locked():
        try:
            same = there.meta("format_version") is not None and there.digest() == source.digest()
        except ConnectionError:
            raise
        except Exception:  # psycopg: no hub tables there
            same = False
        finally:
            there.close()
        if not same:
            raise ValueError(
                f"{there.location} does not hold the rows of the hub in {directory} ({source.location}); "
                "name a route to that same database"
            )
        _point(directory, there)
    return source.location, there.location


def copy(directory: Path, target: Path) -> None:
    """Copy the hub in `directory` to the new folder `target`: its files, and its SQLite file through SQLite's
    backup API, a consistent snapshot whoever has the hub open. (A plain copy of the file by a process that has
    the hub open closes a handle of that file, which drops all that process's locks on it; another process then
    believes itself the last reader, removes the -wal and -shm files, and this process's next open fails with
    "disk I/O error".) A hub whose rows are on a server is refused: the copy would share them."""
    if (directory / POINTER).is_file():
        raise ValueError(
            f"the hub in {directory} keeps its rows on {_pointed(directory).location}: a copy of the folder would "
            "share them; move the rows back first (`mll-jax hub migrate --to sqlite`), or copy on the server"
        )
    live = (sqlite.FILE, f"{sqlite.FILE}-wal", f"{sqlite.FILE}-shm")
    shutil.copytree(directory, target, ignore=shutil.ignore_patterns(*live))
    with (
        closing(sqlite3.connect(directory / sqlite.FILE)) as read,
        closing(sqlite3.connect(target / sqlite.FILE)) as written,
    ):
        read.backup(written)


def _discard(db: Database) -> None:
    """Undo `_fresh`: delete the temporary SQLite file, or drop the tables it made on the server."""
    db.close()
    if isinstance(db, PostgresDatabase):
        db.drop_tables()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db.path}{suffix}").unlink(missing_ok=True)
