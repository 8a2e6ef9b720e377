"""The hub's database (method.md §2.1): models, backbones, small head parameters, the concept index.

The SQL is written once (`?` placeholders) and runs on two backends: SQLite
(`hub/sqlite.py`, one file in the hub directory, the default) and PostgreSQL
(`hub/postgres.py`, a server that the hosts sharing a hub all write to). Each
change (an add, a label record, a removal) is one transaction touching a bounded
number of rows, so a killed writer leaves the database as it was before or after
the change, never between, and adding the 10,000th model costs what adding the
first did.

Only `Hub` talks to it; everyone else asks the hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from mll_jax.hub.entries import BackboneEntry, ModelEntry

__all__ = ["FORMAT_VERSION", "TABLES", "UPGRADABLE_VERSION", "Database", "copy", "fires_on"]

FORMAT_VERSION = 3
# Format 2 is format 3 without the concept index's `fires_on`; `Database.upgrade` makes it format 3 in place.
UPGRADABLE_VERSION = 2
# Every table and the columns that order its rows; `models` by the order models were added.
TABLES = {
    "meta": "key",
    "models": "seq",
    "backbones": "id",
    "head_params": "model",
    "concept_index": "concept, model, head",
}
# The columns a table's rows carry in copies, dumps and digests, where not all of them: `fires_on` is derived
# from the other rows of its head, so a copy recomputes it and a digest leaves it out.
COLUMNS = {"concept_index": "concept, model, head, response, hits"}


class Database:
    """One hub's database: the queries both backends run. A backend gives the connection, the write
    transaction, the hub's write lock, its schema and its own integrity check."""

    backend = ""
    location = ""  # what error messages name: a file, or a server's database
    # The largest `params` in any model's entry, in the backend's own JSON functions.
    LARGEST_PARAMS = ""
    SCHEMA = ""  # the tables and indexes: statements split at every `;` (none in comments), IF NOT EXISTS

    def __init__(self) -> None:
        self._db: Any = None
        self._pid = -1

    # -- what a backend provides --------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """One atomic change, writers queued (not deadlocked); yields something with execute/executemany."""
        raise NotImplementedError

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The hub's write lock: held while a writer puts files and rows in place."""
        raise NotImplementedError

    def integrity(self) -> list[str]:
        """What the backend's own check finds wrong ([] if nothing)."""
        raise NotImplementedError

    def create_tables(self) -> None:
        """The schema, in one transaction."""
        with self._transaction() as db:
            _create_tables(db, self.SCHEMA)

    def update_statistics(self) -> None:
        """Refresh what the query planner knows of the tables after a bulk load (nothing, unless a backend says)."""

    def columns(self, table: str) -> list[str]:
        """The columns of `table` ([] if there is no such table)."""
        raise NotImplementedError

    def upgrade(self) -> None:
        """This format-2 database made format 3, in one transaction: the concept index gains `fires_on`, filled
        from its rows, and the schema's other tables and indexes are made if an early 2.x lacked them."""
        with self._transaction() as db:
            if self.meta("format_version") != str(UPGRADABLE_VERSION):  # another process was first
                return
            columns = self.columns("concept_index")
            if columns:  # (an early 2.x had no concept index: the schema below makes it)
                if "fires_on" not in columns:
                    db.execute("ALTER TABLE concept_index ADD COLUMN fires_on TEXT NOT NULL DEFAULT ''")
                db.execute("DROP INDEX IF EXISTS concept_index_by_hits")  # made again below, covering fires_on
                heads = _concepts_by_head(db.execute("SELECT concept, model, head FROM concept_index"))
                db.executemany(
                    "UPDATE concept_index SET fires_on = ? WHERE model = ? AND head = ?",
                    [(fires_on(concepts), model, head) for (model, head), concepts in heads.items()],
                )
            _create_tables(db, self.SCHEMA)
            db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION),))
        self.update_statistics()

    def fires_on_faults(self) -> list[str]:
        """Heads whose `fires_on` does not name exactly the concepts of their rows (only a hand edit makes one)."""
        rows = self._query("SELECT concept, model, head, fires_on FROM concept_index").fetchall()
        stored: dict[tuple[str, int], set[str]] = {}
        for _, model, head, text in rows:
            stored.setdefault((model, head), set()).add(text)
        heads = _concepts_by_head(rows)
        wrong = sorted(key for key, concepts in heads.items() if stored[key] != {fires_on(concepts)})
        if not wrong:
            return []
        return [
            f"{len(wrong)} head(s) whose fires_on does not name exactly the concepts of their rows (first: model "
            f"{wrong[0][0]}, head {wrong[0][1]}); label those models again (mll-jax label --force MODEL)"
        ]

    def _query(self, sql: str, args=()) -> Any:
        return self._connection.execute(sql, args)

    def _in(self, column: str, values: list) -> tuple[str, list]:
        """`column IN (...)` for `values`, and its arguments (a backend may write it its own way)."""
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def _contains_any(self, column: str, words: list[str]) -> tuple[str, list]:
        """A test that the text in `column` contains one of `words`, and its arguments (a backend may write it
        its own way)."""
        if not words:
            return "1 = 0", []
        return " OR ".join([f"instr({column}, ?) > 0"] * len(words)), list(words)

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None

    @property
    def _connection(self) -> Any:
        if self._db is None or self._pid != os.getpid():  # a forked child opens its own
            self._db = self._connect()
            self._pid = os.getpid()
        return self._db

    # -- reading ----------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._query("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def models(self) -> dict[str, ModelEntry]:
        """Every model's entry, in the order they were added."""
        rows = self._query("SELECT id, entry, labels_checksum FROM models ORDER BY seq").fetchall()
        return {i: ModelEntry.from_json(i, json.loads(entry), labels) for i, entry, labels in rows}

    def model(self, model_id: str) -> ModelEntry | None:
        row = self._query("SELECT entry, labels_checksum FROM models WHERE id = ?", (model_id,)).fetchone()
        return ModelEntry.from_json(model_id, json.loads(row[0]), row[1]) if row else None

    def ids(self, role: str) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM models WHERE role = ? ORDER BY seq", (role,)).fetchall()]

    def count(self) -> int:
        return self._query("SELECT COUNT(*) FROM models").fetchone()[0]

    def with_signature(self, signature: str) -> list[str]:
        rows = self._query("SELECT id FROM models WHERE signature = ? ORDER BY seq", (signature,)).fetchall()
        return [r[0] for r in rows]

    def signature(self, model_id: str) -> str | None:
        row = self._query("SELECT signature FROM models WHERE id = ?", (model_id,)).fetchone()
        return row[0] if row else None

    def backbones(self) -> dict[str, BackboneEntry]:
        rows = self._query("SELECT id, entry FROM backbones ORDER BY id").fetchall()
        return {i: BackboneEntry.from_json(i, json.loads(e)) for i, e in rows}

    def head_params(self, model_id: str) -> bytes | None:
        row = self._query("SELECT data FROM head_params WHERE model = ?", (model_id,)).fetchone()
        return bytes(row[0]) if row else None

    def unlabelled(self) -> list[str]:
        rows = self._query("SELECT id FROM models WHERE labels_checksum IS NULL ORDER BY seq").fetchall()
        return [r[0] for r in rows]

    def excluded(self) -> dict[str, str]:
        """Models labelling excluded, and why."""
        rows = self._query("SELECT id, label_problem FROM models WHERE label_problem != '' ORDER BY seq")
        return dict(rows.fetchall())

    def largest_params(self) -> int:
        row = self._query(self.LARGEST_PARAMS).fetchone()
        return int(row[0] or 0)

    def concept_rows(self, concepts: Iterable[str]) -> list[tuple[str, str, int, float, float]]:
        """(concept, model, head, response, hits) of every usable expert head that fires on any of `concepts`."""
        in_concepts, args = self._in("c.concept", sorted(set(concepts)))
        rows = self._query(
            "SELECT c.concept, c.model, c.head, c.response, c.hits FROM concept_index c "
            f"JOIN models m ON m.id = c.model WHERE {in_concepts} AND m.label_problem = '' "
            "ORDER BY m.seq, c.head, c.concept",
            args,
        )
        return [tuple(r) for r in rows.fetchall()]

    def valid_rows(self, reads: dict[str, list[str]], limit: int) -> dict[str, list[tuple[str, int, float]]]:
        """For each concept of `reads` (concept -> other concepts): (model, head, hits) of the `limit` usable heads
        with the most hits on it (ties in hub order) that fire on none of its others. One statement: per concept an
        index scan by hits, each head tested as it comes, that stops at `limit` such heads."""
        # The test reads the scanned row's own `fires_on`, not other rows: at 10,000 experts the heads that fire
        # on a concept mostly fire on its siblings too (1,806 of the first 1,824 'sandal' heads also fire on
        # 'boot' or 'gym shoe'), and a primary-key probe per scanned head cost SQLite 1.3 and PostgreSQL 2.4 ms
        # a query, against 0.15 and 0.5 ms now (the 10,000-expert scale hub, one 3-class task). One statement for
        # all the concepts: on a server each statement is a round trip.
        parts, args = [], []
        for i, (concept, others) in enumerate(reads.items()):
            fires_elsewhere, args_others = self._contains_any("c.fires_on", [_word(c) for c in sorted(set(others))])
            parts.append(
                "SELECT * FROM (SELECT c.concept, c.model, c.head, c.hits, m.seq FROM concept_index c "
                "JOIN models m ON m.id = c.model WHERE c.concept = ? AND m.label_problem = '' "
                f"AND NOT ({fires_elsewhere}) ORDER BY c.hits DESC, m.seq, c.head LIMIT ?) AS read_{i}"
            )
            args += [concept, *args_others, limit]
        found: dict[str, list[tuple[str, int, float]]] = {concept: [] for concept in reads}
        if parts:
            rows = self._query(" UNION ALL ".join(parts), args).fetchall()
            for concept, model, head, hits, _ in sorted(rows, key=lambda r: (r[0], -r[3], r[4], r[2])):
                found[concept].append((model, head, hits))  # ties in hub order, as the cap keeps them
        return found

    def firings(self, models: Iterable[str], concepts: Iterable[str]) -> list[tuple[str, str, int, float]]:
        """(concept, model, head, hits) of `models`' heads on any of `concepts`."""
        in_models, model_args = self._in("model", sorted(set(models)))
        in_concepts, concept_args = self._in("concept", sorted(set(concepts)))
        rows = self._query(
            f"SELECT concept, model, head, hits FROM concept_index WHERE {in_models} AND {in_concepts} "
            "ORDER BY concept, model, head",
            [*model_args, *concept_args],
        )
        return [tuple(r) for r in rows.fetchall()]

    def order(self, models: Iterable[str]) -> dict[str, int]:
        """Each model's position in the order models were added."""
        in_models, args = self._in("id", sorted(set(models)))
        return dict(self._query(f"SELECT id, seq FROM models WHERE {in_models}", args).fetchall())

    def rows(self, table: str) -> Iterator[tuple]:
        """Every row of `table` in its `TABLES` order (copies, dumps, digests)."""
        columns = COLUMNS.get(table, "*")
        yield from (tuple(r) for r in self._query(f"SELECT {columns} FROM {table} ORDER BY {TABLES[table]}").fetchall())

    def dump(self) -> str:
        """The whole database as text, one line a row (to compare two states of a hub)."""
        return "\n".join(f"{table} {_plain(row)!r}" for table in TABLES for row in self.rows(table))

    def digest(self) -> str:
        """sha256 of the contents, whatever the backend: the models in the order added but not their `seq`
        numbers (a copy numbers them afresh), every other row as it is."""
        h = hashlib.sha256()
        for table in TABLES:
            for row in self.rows(table):
                h.update(repr((table, _plain(row[1:] if table == "models" else row))).encode())
        return h.hexdigest()

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
                "INSERT INTO backbones (id, entry) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET entry = excluded.entry",
                (entry.id, json.dumps(entry.to_json())),
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
            _insert_index_rows(db, model_id, [(c, int(h), float(r), float(a)) for c, h, r, a in rows])

    def put_meta(self, items: dict[str, str]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(items.items()),
            )


def copy(source: Database, target: Database) -> None:
    """Every row of `source` into the empty `target` (models in the order added), then check the two digests."""
    if target.count() or target.meta("format_version"):
        raise ValueError(f"{target.location} already holds a hub; copy into an empty database")
    target.put_meta(dict(source.rows("meta")))
    for row in source.rows("backbones"):
        with target._transaction() as db:
            db.execute("INSERT INTO backbones (id, entry) VALUES (?, ?)", row)
    params = dict(source.rows("head_params"))
    index: dict[str, list[tuple]] = {}
    for concept, model, head, response, hits in source.rows("concept_index"):
        index.setdefault(model, []).append((concept, head, response, hits))
    for _seq, model_id, role, signature, entry, checksum, excluded in source.rows("models"):
        with target._transaction() as db:
            db.execute(
                "INSERT INTO models (id, role, signature, entry, labels_checksum, label_problem) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (model_id, role, signature, entry, checksum, excluded),
            )
            if model_id in params:
                db.execute("INSERT INTO head_params (model, data) VALUES (?, ?)", (model_id, bytes(params[model_id])))
            _insert_index_rows(db, model_id, index.get(model_id, []))
    target.update_statistics()
    if source.digest() != target.digest():
        raise RuntimeError(f"the copy in {target.location} does not match {source.location}; it was not used")


def _plain(row) -> tuple:
    return tuple(bytes(v).hex() if isinstance(v, bytes | memoryview) else v for v in row)


def _word(concept: str) -> str:
    """`concept` as it stands in a `fires_on` text: between spaces, so no concept matches inside another."""
    if not concept or any(ch.isspace() for ch in concept):
        raise ValueError(f"concept id {concept!r} is empty or holds white space; concept ids are SDAG node names")
    return f" {concept} "


def fires_on(concepts: Iterable[str]) -> str:
    """The `fires_on` text of a head that fires on `concepts`: each between spaces, sorted."""
    return "".join(_word(c)[:-1] for c in sorted(set(concepts))) + " "


def _insert_index_rows(db, model_id: str, rows: list[tuple]) -> None:
    """A model's concept index rows (concept, head, response, hits), each with its head's `fires_on`."""
    heads = _concepts_by_head((concept, model_id, head) for concept, head, *_ in rows)
    db.executemany(
        "INSERT INTO concept_index (concept, model, head, response, hits, fires_on) VALUES (?, ?, ?, ?, ?, ?)",
        [(c, model_id, h, r, a, fires_on(heads[model_id, h])) for c, h, r, a in rows],
    )


def _concepts_by_head(rows: Iterable[tuple]) -> dict[tuple[str, int], list[str]]:
    """(model, head) -> the concepts of its rows, from rows that start (concept, model, head)."""
    heads: dict[tuple[str, int], list[str]] = {}
    for concept, model, head, *_ in rows:
        heads.setdefault((model, head), []).append(concept)
    return heads


def _create_tables(db, schema: str) -> None:
    for statement in filter(str.strip, schema.split(";")):
        db.execute(statement)


def _delete_model(db, model_id: str) -> None:
    for table, column in (("models", "id"), ("head_params", "model"), ("concept_index", "model")):
        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (model_id,))
