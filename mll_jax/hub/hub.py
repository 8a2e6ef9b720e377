"""The hub: a directory of models, their database, label records and the SDAG (method.md §2).

    hub/registry.sqlite    format version, sample-store spec, models, backbones, heads of
                           shared backbones, the concept index (hub/database.py, method.md §2.1)
    hub/database.json      instead: the same tables on a PostgreSQL server (hub/location.py)
    hub/registry.json      a pointer for older releases (format-1 hubs: the whole registry)
    hub/models/<id>/       orbax checkpoint of a model that does not share a backbone
    hub/backbones/<id>/    orbax checkpoint of a backbone shared by several experts' heads
    hub/labels/<id>.npz    label record (see labeling/labels.py)
    hub/sdag.json, hub/sdag_samples.npz

Files are written to a temporary path and renamed into place, database changes are
one transaction each, and writers take the database's write lock (a file lock
for SQLite, an advisory lock on the server for PostgreSQL), so readers never see
a half-written hub. The hub is the only reader of its database: every other stage
asks it by name (entries, concept rows, signatures, label records, node samples),
and it keeps what it read and derived until its contents change.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mll_jax import paths
from mll_jax.concepts import sdag as sdag_lib
from mll_jax.configs.selection import SelectionConfig
from mll_jax.configs.specs import LabelRule, StoreSpec
from mll_jax.data import store as store_lib
from mll_jax.hub import files, location, migration
from mll_jax.hub.database import Database
from mll_jax.hub.entries import ROLES, BackboneEntry, ModelEntry
from mll_jax.memo import Memo

if TYPE_CHECKING:
    from flax import nnx

__all__ = ["Hub"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Hub:
    """A hub on disk. Open an existing one with `Hub.open`, make one with `Hub.create`."""

    def __init__(self, path: Path, db: Database, store: store_lib.SampleStore | None = None):
        self.path = Path(path).absolute()  # checkpoint writers need absolute paths
        self._db = db
        self._sdag: sdag_lib.SDAG | None = None
        self._store = store
        self._store_concepts: np.ndarray | None = None
        self._labels: dict[str, dict[str, np.ndarray]] = {}
        self._reads = Memo()  # what was read from the database; dropped by every write
        self._derived = Memo()  # values derived from the hub's contents (node samples); dropped by every write

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> Hub:
        """The hub at `path`; a format-1 hub (registry.json) is migrated to a database first, once."""
        path = Path(path or paths.default_hub()).expanduser()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"hub path {path} is a file, not a hub directory")
        legacy = path / migration.LEGACY
        if not location.exists(path) and not legacy.is_file():
            raise FileNotFoundError(f"no hub at {path} (no database); build one with `mll-jax hub build`")
        if legacy.is_file() and migration.read_legacy(path) is not None:
            if not os.access(path, os.W_OK):
                raise PermissionError(
                    f"hub {path} has a format-1 registry.json, which is migrated once on opening; "
                    "open it once with write permission"
                )
            with files.locked(path):
                migration.migrate(path)
        return cls(path, location.open_database(path))

    def copy(self, path: str | os.PathLike) -> Hub:
        """A copy of this hub in the new folder `path`, opened (its SQLite rows copied through SQLite's backup
        API, safe while the hub is open here or elsewhere; a hub whose rows are on a server is refused)."""
        path = Path(path).expanduser()
        if path.exists():
            raise FileExistsError(f"{path} exists; copy the hub into a new folder")
        location.copy(self.path, path)
        return Hub.open(path)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        store_spec: StoreSpec = StoreSpec(),
        database: str | None = None,
        label_rule: LabelRule = LabelRule(),
        selection: SelectionConfig = SelectionConfig(),
    ) -> Hub:
        """A new empty hub with its SDAG built from the sample store; its rows in a SQLite file in `path`, or
        with `database` (postgresql://...) on that server, which every host sharing `path` reaches. Its heads
        are labelled by `label_rule` (`set_label_rule` changes it); `selection` is how its tasks are solved
        unless a caller says otherwise (`set_selection_config` changes it)."""
        path = Path(path).expanduser()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"hub path {path} is a file; choose a directory")
        if location.exists(path) or (path / migration.LEGACY).exists():
            raise FileExistsError(f"a hub already exists at {path}; open it with Hub.open")
        path.mkdir(parents=True, exist_ok=True)
        store = store_lib.load(store_spec)
        sdag_lib.build(store).save(path)
        with files.locked(path):
            given = {"label_rule": (label_rule, LabelRule()), "selection": (selection, SelectionConfig())}
            settings = {name: value.to_json() for name, (value, default) in given.items() if value != default}
            db = location.create(path, store_spec.to_json(), database, settings)  # defaults are not written
            migration.write_pointer(path)
        return cls(path, db, store)

    @property
    def database(self) -> str:
        """Where the hub's rows are: its SQLite file, or a PostgreSQL server's database (password hidden)."""
        return self._db.location

    # -- models -----------------------------------------------------------------
    @property
    def entries(self) -> dict[str, ModelEntry]:
        """Every model's entry, in the order added (a read of the whole database: prefer `entry` for one)."""
        return self._reads.get("entries", self._db.models)

    def ids(self, role: str = "expert") -> list[str]:
        return self._reads.get(("ids", role), lambda: self._db.ids(role))

    def __len__(self) -> int:
        return self._reads.get("count", self._db.count)

    @property
    def general_id(self) -> str | None:
        general = self.ids("general")
        return general[0] if general else None

    def entry(self, model_id: str) -> ModelEntry:
        if "entries" in self._reads:  # the whole database was read already
            entry = self.entries.get(model_id)
        else:
            entry = self._reads.get(("entry", model_id), lambda: self._db.model(model_id))
        if entry is None:
            raise KeyError(f"no model {model_id!r} in hub {self.path}; `mll-jax hub list` shows what is there")
        return entry

    def unlabelled(self) -> list[str]:
        """Models without a label record."""
        return self._reads.get("unlabelled", self._db.unlabelled)

    def excluded(self) -> dict[str, str]:
        """Models labelling excluded from selection, and why."""
        return self._reads.get("excluded", self._db.excluded)

    def largest_params(self) -> int:
        return self._reads.get("largest", self._db.largest_params)

    def signature(self, model_id: str) -> str:
        """The engine signature of a model: models with equal signatures run as one program."""
        found = self._db.signature(model_id)
        if found is None:
            raise KeyError(f"no model {model_id!r} in hub {self.path}")
        return found

    def with_signature(self, signature: str) -> list[str]:
        """The models of one engine signature, in the order they were added."""
        return self._db.with_signature(signature)

    def order(self, model_ids) -> dict[str, int]:
        """Each of `model_ids`' position in the order models were added."""
        return self._db.order(model_ids)

    @property
    def backbones(self) -> dict[str, BackboneEntry]:
        """Shared backbones: id -> entry. Experts with a `backbone` store only their heads."""
        return self._reads.get("backbones", self._db.backbones)

    # -- the concept index (method.md §2.1) ---------------------------------------
    def concept_rows(self, concepts) -> list[tuple[str, str, int, float, float]]:
        """(concept, model, head, response, hits) of every usable expert head that fires on any of `concepts`."""
        return self._db.concept_rows(concepts)

    def valid_rows(self, reads: dict, limit: int) -> dict[str, list[tuple[str, int, float]]]:
        """Per concept of `reads` (concept -> other concepts): (model, head, hits) of the `limit` heads with the
        most hits on it that fire on none of its others."""
        return self._db.valid_rows({c: list(others) for c, others in reads.items()}, limit)

    def firings(self, model_ids, concepts) -> list[tuple[str, str, int, float]]:
        """(concept, model, head, hits) of `model_ids`' heads on any of `concepts`."""
        return self._db.firings(model_ids, concepts)

    # -- the store and the SDAG -------------------------------------------------
    @property
    def sdag(self) -> sdag_lib.SDAG:
        if self._sdag is None:
            self._sdag = sdag_lib.SDAG.load(self.path)
        return self._sdag

    @property
    def store_spec(self) -> StoreSpec:
        stored = self._reads.get("store", lambda: json.loads(self._db.meta("store")))
        return StoreSpec(**{"dev_per_class": 0, **stored})  # older hubs: no development split

    @property
    def label_rule(self) -> LabelRule:
        """What the hub's heads may be labelled with (`LabelRule`; hubs made before it existed: the default)."""
        stored = self._reads.get("label_rule", lambda: self._db.meta("label_rule"))
        return LabelRule(**json.loads(stored)) if stored else LabelRule()

    @property
    def selection_config(self) -> SelectionConfig:
        """How this hub's tasks are solved when a caller gives no config (hubs not given one: the default)."""
        stored = self._reads.get("selection", lambda: self._db.meta("selection"))
        if not stored:
            return SelectionConfig()
        try:
            return SelectionConfig.from_json(json.loads(stored))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"hub {self.path}: its stored selection settings are unreadable ({error}); set them again with "
                "Hub.set_selection_config, or pass a config to select"
            ) from error

    @property
    def store(self) -> store_lib.SampleStore:
        if self._store is None:
            self._store = store_lib.load(self.store_spec)
        return self._store

    @property
    def store_concepts(self) -> np.ndarray:
        """The sample store's concept index per image, kept beside the SDAG so that selection does
        not load the store's images."""
        if self._store_concepts is None:
            path = self.path / "store_concepts.npy"
            if path.is_file():
                self._store_concepts = np.load(path, allow_pickle=False)
            else:
                self._store_concepts = np.asarray(self.store.concepts)
                with contextlib.suppress(OSError):  # a read-only hub loads the store next time too
                    tmp = self.path / ".store_concepts.tmp.npy"
                    np.save(tmp, self._store_concepts)
                    os.replace(tmp, path)
        return self._store_concepts

    def concept_items(self, seed: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """(fit, val): per concept, its store indices in that half, in the fixed shuffle of `seed`
        (`data.store.concept_items`); node samples come from their fronts."""
        return self._derived.get(("concept items", seed), lambda: store_lib.concept_items(self.store_concepts, seed))

    def sample_rows(self, per_concept: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, position): every store index a node sample of `seed` can be (the first `per_concept` items of
        each concept in each half, and the padding row 0), and each store index's position among them."""
        return self._derived.get(
            ("sample rows", per_concept, seed),
            lambda: store_lib.front_rows(self.concept_items(seed), per_concept, len(self.store_concepts)),
        )

    def sample_probs(self, model_id: str, per_concept: int, seed: int) -> np.ndarray:
        """`model_id`'s label-record probabilities at `sample_rows` only: a selection over thousands of models
        keeps a fraction of each record, not the whole."""
        rows, _ = self.sample_rows(per_concept, seed)
        return self._derived.get(
            ("sample probs", model_id, per_concept, seed), lambda: self.labels(model_id, keep=False)["probs"][rows]
        )

    # -- parameters and label records -------------------------------------------
    def load_model(self, model_id: str, reread: bool = False) -> nnx.Module:
        """The stored model: the whole model, or only its heads if it reads a shared backbone.

        Kept by the hub, so classifiers built one after another read a checkpoint
        once; `reread` reads it from disk as it is now (verification)."""
        if reread:
            return self._read_model(model_id)
        return self._derived.get(("model", model_id), lambda: self._read_model(model_id))

    def _read_model(self, model_id: str) -> nnx.Module:
        from mll_jax import nets  # flax and orbax: only where a model is built or stored
        from mll_jax.hub import checkpoint

        e = self.entry(model_id)
        abstract = nets.abstract(e.arch, e.config, len(e.heads))
        if e.params_in_database:
            data = self._db.head_params(model_id)
            if data is None:
                raise FileNotFoundError(f"no parameters of {model_id} in the database")
            return checkpoint.from_bytes(data, abstract, model_id, e.checksum)
        return checkpoint.restore(self.path / "models" / model_id, abstract, e.checksum)

    def load_backbone(self, backbone_id: str) -> nnx.Module:
        """A shared backbone (kept by the hub, like `load_model`)."""
        return self._derived.get(("backbone", backbone_id), lambda: self._read_backbone(backbone_id))

    def _read_backbone(self, backbone_id: str) -> nnx.Module:
        from mll_jax import nets
        from mll_jax.hub import checkpoint

        if backbone_id not in self.backbones:
            raise KeyError(f"no backbone {backbone_id!r} in hub {self.path}; it has {sorted(self.backbones)}")
        e = self.backbones[backbone_id]
        abstract = nets.abstract(e.arch, e.config, e.num_heads)
        return checkpoint.restore(self.path / "backbones" / backbone_id, abstract, e.checksum)

    def labels(self, model_id: str, reread: bool = False, keep: bool = True) -> dict[str, np.ndarray] | None:
        """The label record of `model_id` (cached unless `keep` is False; `reread` reads the file as it is now),
        or None if there is none."""
        if reread:
            self._labels.pop(model_id, None)
            self._derived.clear()
        if model_id not in self._labels:
            path = self._record_path(model_id)
            if not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as record:
                record = dict(record)
            if not keep:
                return record
            self._labels[model_id] = record
        return self._labels[model_id]

    def has_record(self, model_id: str) -> bool:
        """Whether `model_id`'s label record file exists (whatever the database says of it)."""
        return self._record_path(model_id).is_file()

    def labels_valid(self, model_id: str) -> bool:
        """Whether `model_id` has a label record whose checksum matches the database."""
        path = self._record_path(model_id)
        expected = self.entry(model_id).labels_checksum
        return path.is_file() and expected is not None and files.checksum(path) == expected

    def _record_path(self, model_id: str) -> Path:
        return self.path / "labels" / f"{model_id}.npz"

    # -- checks -----------------------------------------------------------------
    def integrity(self) -> list[str]:
        """What the database's own integrity check finds wrong with it ([] if nothing)."""
        return self._db.integrity()

    def dump(self) -> str:
        """The whole database as text, a line a row (to compare two states of a hub)."""
        return self._db.dump()

    def digest(self) -> str:
        """sha256 of the database's contents, the same on either backend (to check a moved hub)."""
        return self._db.digest()

    # -- writing ------------------------------------------------------------------
    def add(
        self,
        model_id: str,
        model: nnx.Module,
        arch: str,
        config: dict,
        heads: list[str],
        input_spec: dict,
        role: str = "expert",
        provenance: dict | None = None,
        backbone: str | None = None,
    ) -> None:
        """Store `model` under `model_id` (replacing an older one of that id).

        With `backbone`, `model` is only the heads (`linear`) over that shared
        backbone's features (add the backbone first with `add_backbone`); such
        heads are a few KB and are stored in the database itself.
        """
        from mll_jax import engine, nets
        from mll_jax.hub import checkpoint

        if not _ID.match(model_id):
            raise ValueError(f"model id {model_id!r} must be 1-64 letters, digits, '_', '-' or '.'")
        if role not in ROLES:
            raise ValueError(f"role {role!r} must be one of {ROLES}")
        if len(heads) != model.head.out_features:
            raise ValueError(f"{model_id}: {len(heads)} head names for {model.head.out_features} heads")
        if backbone is not None:
            if backbone not in self.backbones:
                raise ValueError(f"{model_id}: no backbone {backbone!r} in the hub; add it with Hub.add_backbone")
            width = self.backbones[backbone].features
            if model.head.in_features != width:
                raise ValueError(
                    f"{model_id}: heads read {model.head.in_features} features, backbone {backbone!r} gives {width}"
                )
        signature = engine.signature(engine.Member(model_id, model, input_spec, backbone))
        with self._locked():
            folder = self.path / "models" / model_id
            if backbone is not None:
                blob, digest = checkpoint.to_bytes(model)
            else:
                blob, digest = None, checkpoint.save(folder, model)
            self._drop_labels(model_id)
            entry = ModelEntry(
                id=model_id,
                arch=arch,
                config=config,
                heads=tuple(heads),
                input_spec=input_spec,
                role=role,
                # A family head's cost counts its backbone: it is what running it costs alone.
                params=nets.num_params(model) + (self.backbones[backbone].params if backbone else 0),
                checksum=digest,
                provenance=provenance or {},
                added=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                backbone=backbone,
                params_in_database=backbone is not None,
            )
            self._db.put_model(entry, signature, blob)
            if blob is not None:
                shutil.rmtree(folder, ignore_errors=True)  # an older model of this id kept a directory
            self.refresh()

    def copy_backbone(self, source: Hub, backbone_id: str) -> None:
        """Add `source`'s backbone `backbone_id` (checkpoint and entry) to this hub."""
        b = source.backbones[backbone_id]
        model = source.load_backbone(backbone_id)
        self.add_backbone(backbone_id, model, b.arch, b.config, b.input_spec, b.provenance)

    def copy_model(self, source: Hub, model_id: str) -> None:
        """Add `source`'s model `model_id` (checkpoint, entry, and its backbone if this hub lacks it; not its
        label record) to this hub."""
        e = source.entry(model_id)
        if e.backbone and e.backbone not in self.backbones:
            self.copy_backbone(source, e.backbone)
        model = source.load_model(model_id)
        self.add(model_id, model, e.arch, e.config, list(e.heads), e.input_spec, e.role, e.provenance, e.backbone)

    def add_backbone(
        self,
        backbone_id: str,
        model: nnx.Module,
        arch: str,
        config: dict,
        input_spec: dict,
        provenance: dict | None = None,
    ) -> None:
        """Store a feature extractor that several experts' heads share (its own head is kept but unused)."""
        from mll_jax import nets
        from mll_jax.hub import checkpoint

        if not _ID.match(backbone_id):
            raise ValueError(f"backbone id {backbone_id!r} must be 1-64 letters, digits, '_', '-' or '.'")
        with self._locked():
            self.refresh()
            users = [i for i, e in self.entries.items() if e.backbone == backbone_id]
            if users:
                raise ValueError(f"backbone {backbone_id!r} is used by {users}; remove them before replacing it")
            digest = checkpoint.save(self.path / "backbones" / backbone_id, model)
            entry = BackboneEntry(
                id=backbone_id,
                arch=arch,
                config=config,
                num_heads=model.head.out_features,
                features=model.head.in_features,
                input_spec=input_spec,
                params=nets.num_params(model),
                checksum=digest,
                provenance=provenance or {},
            )
            self._db.put_backbone(entry)
            self.refresh()

    def replace_entry(self, entry: ModelEntry) -> None:
        """Rewrite a model's entry in place, keeping its parameters and label state (repairs and tests)."""
        self.entry(entry.id)
        with self._locked():
            self._db.replace_entry(entry)
            self.refresh()

    def remove(self, model_id: str) -> None:
        """Delete a model, its checkpoint and its label record."""
        with self._locked():
            self.refresh()
            self.entry(model_id)
            self._db.remove_model(model_id)
            self._drop_labels(model_id)
            shutil.rmtree(self.path / "models" / model_id, ignore_errors=True)
            self.refresh()

    def save_labels(
        self, model_id: str, record: dict[str, np.ndarray], index_rows: list[tuple], excluded: str = ""
    ) -> None:
        """Write a label record atomically; its checksum, `excluded` (why labelling excludes the model, '' if it
        does not) and its concept index rows (concept, head, response, hits) go to the database in one
        transaction."""
        self.entry(model_id)
        directory = self.path / "labels"
        directory.mkdir(exist_ok=True)
        with self._locked():
            tmp = directory / f".{model_id}.tmp.npz"
            np.savez(tmp, **record)
            digest = files.checksum(tmp)
            os.replace(tmp, self._record_path(model_id))
            self._db.set_labels(model_id, digest, excluded, index_rows)
        self.refresh()
        self._labels[model_id] = dict(record)

    def set_label_rule(self, label_rule: LabelRule) -> None:
        """Label this hub's heads by `label_rule` from now on. Records made before keep their rows until the models
        are labelled again (`labeling.label(hub, force=True)`): a study of rules runs on a copy."""
        with self._locked():
            self._db.put_meta({"label_rule": json.dumps(label_rule.to_json())})
        self.refresh()

    def set_selection_config(self, config: SelectionConfig) -> None:
        """Solve this hub's tasks by `config` when a caller gives none (`mll.select`, `mll-jax select`)."""
        with self._locked():
            self._db.put_meta({"selection": json.dumps(config.to_json())})
        self.refresh()

    def rebuild_sdag(self) -> None:
        """Build the SDAG of the hub's sample store again and save it (a repair)."""
        with self._locked():
            sdag_lib.build(self.store).save(self.path)
        self._sdag = None
        self._derived.clear()

    def refresh(self) -> None:
        """Forget what was read from the database (after another process changed it)."""
        self._reads.clear()
        self._derived.clear()

    def close(self) -> None:
        """Close this process's database connection (it reopens on the next read)."""
        self._db.close()

    def _drop_labels(self, model_id: str) -> None:
        self._labels.pop(model_id, None)
        self._derived.clear()
        with contextlib.suppress(FileNotFoundError):
            self._record_path(model_id).unlink()

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """The database's write lock; every write also puts files in the hub directory, so that must be writable."""
        if not os.access(self.path, os.W_OK):
            raise PermissionError(f"no write permission on hub {self.path}")
        return self._db.locked()
