"""The hub: a directory of models, their registry, label records and the SDAG (method.md §2).

    hub/registry.sqlite    format version, sample-store spec, models, backbones, heads of
                           shared backbones, the concept index (hub/registry.py, method.md §2.1)
    hub/registry.json      a pointer for older releases (format-1 hubs: the whole registry)
    hub/models/<id>/       orbax checkpoint of a model that does not share a backbone
    hub/backbones/<id>/    orbax checkpoint of a backbone shared by several experts' heads
    hub/labels/<id>.npz    label record (see labeling/labels.py)
    hub/sdag.json, hub/sdag_samples.npz

Files are written to a temporary path and renamed into place, registry changes are
one database transaction each, and writers take a file lock, so readers never see
a half-written hub. Values derived from the hub's contents (node samples, label
records) are kept in `hub.memo`, which every write clears.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mll_jax import paths
from mll_jax.concepts import sdag as sdag_lib
from mll_jax.configs.specs import StoreSpec
from mll_jax.data import store as store_lib
from mll_jax.hub import concept_index
from mll_jax.hub import registry as registry_lib
from mll_jax.hub.registry import FORMAT_VERSION
from mll_jax.memo import Memo

if TYPE_CHECKING:
    from flax import nnx

__all__ = ["FORMAT_VERSION", "ROLES", "Hub", "file_checksum"]
ROLES = ("expert", "general")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Hub:
    """A hub on disk. Open an existing one with `Hub.open`, make one with `Hub.create`."""

    def __init__(self, path: Path, registry: registry_lib.Registry, store: store_lib.SampleStore | None = None):
        self.path = Path(path).absolute()  # checkpoint writers need absolute paths
        self.registry = registry
        self._sdag: sdag_lib.SDAG | None = None
        self._store = store
        self._store_concepts: np.ndarray | None = None
        self._labels: dict[str, dict[str, np.ndarray]] = {}
        self._rows: dict = {}  # registry reads, dropped by every write
        self.memo = Memo()  # derived from the hub's contents; cleared by every write

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> Hub:
        """The hub at `path`; a format-1 hub (registry.json) is migrated to a database first, once."""
        path = Path(path or paths.default_hub()).expanduser()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"hub path {path} is a file, not a hub directory")
        legacy = path / registry_lib.LEGACY
        if not (path / registry_lib.FILE).is_file() and not legacy.is_file():
            raise FileNotFoundError(f"no hub at {path} (no registry); build one with `mll-jax hub build`")
        if legacy.is_file() and registry_lib.read_legacy(path) is not None:
            if not os.access(path, os.W_OK):
                raise PermissionError(
                    f"hub {path} has a format-1 registry.json, which is migrated once on opening; "
                    "open it once with write permission"
                )
            with _locked(path):
                registry_lib.migrate_json(path, _signature, _label_state(path))
        return cls(path, registry_lib.open_registry(path))

    @classmethod
    def create(cls, path: str | os.PathLike, store_spec: StoreSpec = StoreSpec()) -> Hub:
        """A new empty hub with its SDAG built from the sample store."""
        path = Path(path).expanduser()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"hub path {path} is a file; choose a directory")
        if (path / registry_lib.FILE).exists() or (path / registry_lib.LEGACY).exists():
            raise FileExistsError(f"a hub already exists at {path}; open it with Hub.open")
        path.mkdir(parents=True, exist_ok=True)
        store = store_lib.load(store_spec)
        sdag_lib.build(store).save(path)
        with _locked(path):
            registry = registry_lib.create(path, store_spec.to_json())
            registry_lib.write_pointer(path)
        return cls(path, registry, store)

    # -- reading ----------------------------------------------------------------
    @property
    def entries(self) -> dict[str, dict]:
        """Every model's entry, in the order added (a read of the whole registry: prefer `entry` for one)."""
        return self._read("entries", self.registry.models)

    def ids(self, role: str = "expert") -> list[str]:
        return self._read(("ids", role), lambda: self.registry.ids(role))

    def __len__(self) -> int:
        return self._read("count", self.registry.count)

    @property
    def general_id(self) -> str | None:
        general = self.ids("general")
        return general[0] if general else None

    def entry(self, model_id: str) -> dict:
        if "entries" in self._rows:
            entry = self._rows["entries"].get(model_id)
        else:
            entry = self._read(("entry", model_id), lambda: self.registry.model(model_id))
        if entry is None:
            raise KeyError(f"no model {model_id!r} in hub {self.path}; `mll-jax hub list` shows what is there")
        return entry

    def unlabelled(self) -> list[str]:
        """Models without a label record."""
        return self._read("unlabelled", self.registry.unlabelled)

    def excluded(self) -> dict[str, str]:
        """Models labelling excluded from selection, and why."""
        return self._read("excluded", self.registry.problems)

    def largest_params(self) -> int:
        return self._read("largest", self.registry.largest_params)

    @property
    def sdag(self) -> sdag_lib.SDAG:
        if self._sdag is None:
            self._sdag = sdag_lib.SDAG.load(self.path)
        return self._sdag

    @property
    def store_spec(self) -> StoreSpec:
        stored = self._read("store", lambda: json.loads(self.registry.meta("store")))
        return StoreSpec(**{"dev_per_class": 0, **stored})  # older hubs: no development split

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

    @property
    def backbones(self) -> dict[str, dict]:
        """Shared backbones: id -> entry. Experts with a `backbone` store only their heads."""
        return self._read("backbones", self.registry.backbones)

    def load_model(self, model_id: str, reread: bool = False) -> nnx.Module:
        """The stored model: the whole model, or only its heads if it reads a shared backbone.

        Kept in the hub's memo, so classifiers built one after another read a checkpoint
        once; `reread` reads it from disk as it is now (verification)."""
        if reread:
            return self._read_model(model_id)
        return self.memo.get(("model", model_id), lambda: self._read_model(model_id))

    def _read_model(self, model_id: str) -> nnx.Module:
        from mll_jax import nets  # flax and orbax: only where a model is built or stored
        from mll_jax.hub import checkpoint

        e = self.entry(model_id)
        abstract = nets.abstract(e["arch"], e["config"], len(e["heads"]))
        if e.get("stored") == "registry":
            data = self.registry.head_params(model_id)
            if data is None:
                raise FileNotFoundError(f"no parameters of {model_id} in the registry")
            return checkpoint.from_bytes(data, abstract, model_id, e["checksum"])
        return checkpoint.restore(self.path / "models" / model_id, abstract, e["checksum"])

    def load_backbone(self, backbone_id: str) -> nnx.Module:
        """A shared backbone (kept in the hub's memo, like `load_model`)."""
        return self.memo.get(("backbone", backbone_id), lambda: self._read_backbone(backbone_id))

    def _read_backbone(self, backbone_id: str) -> nnx.Module:
        from mll_jax import nets
        from mll_jax.hub import checkpoint

        if backbone_id not in self.backbones:
            raise KeyError(f"no backbone {backbone_id!r} in hub {self.path}; it has {sorted(self.backbones)}")
        e = self.backbones[backbone_id]
        abstract = nets.abstract(e["arch"], e["config"], e["num_heads"])
        return checkpoint.restore(self.path / "backbones" / backbone_id, abstract, e["checksum"])

    def labels(self, model_id: str, reread: bool = False, keep: bool = True) -> dict[str, np.ndarray] | None:
        """The label record of `model_id` (cached unless `keep` is False; `reread` reads the file as it is now),
        or None if there is none."""
        if reread:
            self._labels.pop(model_id, None)
            self.memo.clear()
        if model_id not in self._labels:
            path = self.path / "labels" / f"{model_id}.npz"
            if not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as record:
                record = dict(record)
            if not keep:
                return record
            self._labels[model_id] = record
        return self._labels[model_id]

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
        heads are a few KB and are stored in the registry itself.
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
            width = self.backbones[backbone]["features"]
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
            entry = {
                "arch": arch,
                "config": config,
                "heads": list(heads),
                "input_spec": input_spec,
                "role": role,
                # A family head's cost counts its backbone: it is what running it costs alone.
                "params": nets.num_params(model) + (self.backbones[backbone]["params"] if backbone else 0),
                "checksum": digest,
                "provenance": provenance or {},
                "added": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            }
            if backbone is not None:
                entry |= {"backbone": backbone, "stored": "registry"}
            self.registry.put_model(model_id, entry, signature, blob)
            if blob is not None:
                shutil.rmtree(folder, ignore_errors=True)  # an older model of this id kept a directory
            self.refresh()

    def copy_backbone(self, source: Hub, backbone_id: str) -> None:
        """Add `source`'s backbone `backbone_id` (checkpoint and entry) to this hub."""
        b = source.backbones[backbone_id]
        model = source.load_backbone(backbone_id)
        self.add_backbone(backbone_id, model, b["arch"], b["config"], b["input_spec"], b["provenance"])

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
            users = [i for i, e in self.entries.items() if e.get("backbone") == backbone_id]
            if users:
                raise ValueError(f"backbone {backbone_id!r} is used by {users}; remove them before replacing it")
            digest = checkpoint.save(self.path / "backbones" / backbone_id, model)
            entry = {
                "arch": arch,
                "config": config,
                "num_heads": model.head.out_features,
                "features": model.head.in_features,
                "input_spec": input_spec,
                "params": nets.num_params(model),
                "checksum": digest,
                "provenance": provenance or {},
            }
            self.registry.put_backbone(backbone_id, entry)
            self.refresh()

    def remove(self, model_id: str) -> None:
        """Delete a model, its checkpoint and its label record."""
        with self._locked():
            self.refresh()
            self.entry(model_id)
            self.registry.remove_model(model_id)
            self._drop_labels(model_id)
            shutil.rmtree(self.path / "models" / model_id, ignore_errors=True)
            self.refresh()

    def save_labels(self, model_id: str, record: dict[str, np.ndarray]) -> None:
        """Write a label record atomically; its checksum and concept index rows go to the registry."""
        entry = self.entry(model_id)
        directory = self.path / "labels"
        directory.mkdir(exist_ok=True)
        rows = concept_index.rows(record, self.sdag.concept_nodes) if entry["role"] == "expert" else []
        problem = str(record["problem"]) if "problem" in record else ""
        with self._locked():
            tmp = directory / f".{model_id}.tmp.npz"
            np.savez(tmp, **record)
            digest = file_checksum(tmp)
            os.replace(tmp, directory / f"{model_id}.npz")
            self.registry.set_labels(model_id, digest, problem, rows)
        self.refresh()
        self._labels[model_id] = dict(record)

    def labels_valid(self, model_id: str) -> bool:
        """Whether `model_id` has a label record whose checksum matches the registry."""
        path = self.path / "labels" / f"{model_id}.npz"
        expected = self.entry(model_id).get("labels_checksum")
        return path.is_file() and expected is not None and file_checksum(path) == expected

    def rebuild_sdag(self) -> None:
        """Build the SDAG of the hub's sample store again and save it (a repair)."""
        with self._locked():
            sdag_lib.build(self.store).save(self.path)
        self._sdag = None
        self.memo.clear()

    def _read(self, key, read):
        if key not in self._rows:
            self._rows[key] = read()
        return self._rows[key]

    def refresh(self) -> None:
        """Forget what was read from the registry (after another process, or a direct registry write, changed it)."""
        self._rows.clear()
        self.memo.clear()

    def _drop_labels(self, model_id: str) -> None:
        self._labels.pop(model_id, None)
        self.memo.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.path / "labels" / f"{model_id}.npz").unlink()

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return _locked(self.path)


def _signature(model_id: str, entry: dict, backbones: dict) -> str:
    """A format-1 entry's engine signature (migration); an entry that does not build runs alone."""
    from mll_jax import engine, nets

    try:
        abstract = nets.abstract(entry["arch"], entry["config"], len(entry["heads"]))
        return engine.signature(engine.Member(model_id, abstract, entry["input_spec"], entry.get("backbone")))
    except (ValueError, TypeError, KeyError):
        return f"alone:{model_id}"


def _label_state(path: Path):
    """For migration: a format-1 entry's label checksum, problem and concept index rows, read from its record."""
    sdag = sdag_lib.SDAG.load(path)

    def state(model_id: str, entry: dict) -> tuple[str | None, str, list[tuple]]:
        record_path = path / "labels" / f"{model_id}.npz"
        expected = entry.get("labels_checksum")
        if not record_path.is_file() or expected is None or file_checksum(record_path) != expected:
            return None, "", []  # not labelled, or a record the registry does not vouch for: label it again
        with np.load(record_path, allow_pickle=False) as record:
            record = dict(record)
        problem = str(record["problem"]) if "problem" in record else ""
        rows = concept_index.rows(record, sdag.concept_nodes) if entry["role"] == "expert" else []
        return expected, problem, rows

    return state


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if not os.access(path, os.W_OK):
        raise PermissionError(f"no write permission on hub {path}")
    with open(path / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
