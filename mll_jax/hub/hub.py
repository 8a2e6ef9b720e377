"""The hub: a directory of models, their registry, label records and the SDAG (method.md §2).

    hub/registry.json      format version, sample-store spec, one entry per model
    hub/models/<id>/       orbax checkpoint
    hub/backbones/<id>/    orbax checkpoint of a backbone shared by several experts' heads
    hub/labels/<id>.npz    label record (see labeling/labels.py)
    hub/sdag.json, hub/sdag_samples.npz

Every write goes to a temporary path and is renamed into place under a file lock,
so readers never see a half-written hub. Values derived from the hub's contents
(selection's label cache, node samples) are kept in `hub.memo`, which every write clears.
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

import numpy as np
from flax import nnx

from mll_jax import nets, paths
from mll_jax.concepts import sdag as sdag_lib
from mll_jax.configs.specs import StoreSpec
from mll_jax.data import store as store_lib
from mll_jax.hub import checkpoint
from mll_jax.memo import Memo

FORMAT_VERSION = 1
ROLES = ("expert", "general")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Hub:
    """A hub on disk. Open an existing one with `Hub.open`, make one with `Hub.create`."""

    def __init__(self, path: Path, registry: dict, store: store_lib.SampleStore | None = None):
        self.path = Path(path).absolute()  # checkpoint writers need absolute paths
        self._registry = registry
        self._sdag: sdag_lib.SDAG | None = None
        self._store = store
        self._labels: dict[str, dict[str, np.ndarray]] = {}
        self.memo = Memo()  # derived from the hub's contents; cleared by every write

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> Hub:
        path = Path(path or paths.default_hub()).expanduser()
        return cls(path, _read_registry(path))

    @classmethod
    def create(cls, path: str | os.PathLike, store_spec: StoreSpec = StoreSpec()) -> Hub:
        """A new empty hub with its SDAG built from the sample store."""
        path = Path(path).expanduser()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"hub path {path} is a file; choose a directory")
        if (path / "registry.json").exists():
            raise FileExistsError(f"a hub already exists at {path}; open it with Hub.open")
        path.mkdir(parents=True, exist_ok=True)
        store = store_lib.load(store_spec)
        sdag_lib.build(store).save(path)
        registry = {"format_version": FORMAT_VERSION, "store": store_spec.to_json(), "models": {}}
        with _locked(path):
            _write_registry(path, registry)
        return cls(path, registry, store)

    # -- reading ----------------------------------------------------------------
    @property
    def entries(self) -> dict[str, dict]:
        return self._registry["models"]

    def ids(self, role: str = "expert") -> list[str]:
        return [i for i, e in self.entries.items() if e["role"] == role]

    @property
    def general_id(self) -> str | None:
        general = self.ids("general")
        return general[0] if general else None

    def entry(self, model_id: str) -> dict:
        if model_id not in self.entries:
            raise KeyError(f"no model {model_id!r} in hub {self.path}; `mll-jax hub list` shows what is there")
        return self.entries[model_id]

    @property
    def sdag(self) -> sdag_lib.SDAG:
        if self._sdag is None:
            self._sdag = sdag_lib.SDAG.load(self.path)
        return self._sdag

    @property
    def store_spec(self) -> StoreSpec:
        return StoreSpec(**{"dev_per_class": 0, **self._registry["store"]})  # older hubs: no development split

    @property
    def store(self) -> store_lib.SampleStore:
        if self._store is None:
            self._store = store_lib.load(self.store_spec)
        return self._store

    @property
    def backbones(self) -> dict[str, dict]:
        """Shared backbones: id -> entry. Experts with a `backbone` store only their heads."""
        return self._registry.setdefault("backbones", {})

    def load_model(self, model_id: str) -> nnx.Module:
        """The stored model: the whole model, or only its heads if it reads a shared backbone."""
        e = self.entry(model_id)
        abstract = nets.abstract(e["arch"], e["config"], len(e["heads"]))
        return checkpoint.restore(self.path / "models" / model_id, abstract, e["checksum"])

    def load_backbone(self, backbone_id: str) -> nnx.Module:
        if backbone_id not in self.backbones:
            raise KeyError(f"no backbone {backbone_id!r} in hub {self.path}; it has {sorted(self.backbones)}")
        e = self.backbones[backbone_id]
        abstract = nets.abstract(e["arch"], e["config"], e["num_heads"])
        return checkpoint.restore(self.path / "backbones" / backbone_id, abstract, e["checksum"])

    def labels(self, model_id: str, reread: bool = False) -> dict[str, np.ndarray] | None:
        """The label record of `model_id` (cached; `reread` reads the file as it is now), or None if there is none."""
        if reread:
            self._labels.pop(model_id, None)
            self.memo.clear()
        if model_id not in self._labels:
            path = self.path / "labels" / f"{model_id}.npz"
            if not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as record:
                self._labels[model_id] = dict(record)
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
        backbone's features (add the backbone first with `add_backbone`).
        """
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
        with self._locked():
            self._reload()
            digest = checkpoint.save(self.path / "models" / model_id, model)
            self._drop_labels(model_id)
            self.entries.pop(model_id, None)
            self.entries[model_id] = {
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
                self.entries[model_id]["backbone"] = backbone
            self._write_registry()

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
        if not _ID.match(backbone_id):
            raise ValueError(f"backbone id {backbone_id!r} must be 1-64 letters, digits, '_', '-' or '.'")
        with self._locked():
            self._reload()
            users = [i for i, e in self.entries.items() if e.get("backbone") == backbone_id]
            if users:
                raise ValueError(f"backbone {backbone_id!r} is used by {users}; remove them before replacing it")
            digest = checkpoint.save(self.path / "backbones" / backbone_id, model)
            self.backbones[backbone_id] = {
                "arch": arch,
                "config": config,
                "num_heads": model.head.out_features,
                "features": model.head.in_features,
                "input_spec": input_spec,
                "params": nets.num_params(model),
                "checksum": digest,
                "provenance": provenance or {},
            }
            self._write_registry()

    def remove(self, model_id: str) -> None:
        """Delete a model, its checkpoint and its label record."""
        with self._locked():
            self._reload()
            self.entry(model_id)
            del self.entries[model_id]
            self._write_registry()
            self._drop_labels(model_id)
            shutil.rmtree(self.path / "models" / model_id, ignore_errors=True)

    def save_labels(self, model_id: str, record: dict[str, np.ndarray]) -> None:
        """Write a label record atomically and put its checksum in the registry."""
        self.entry(model_id)
        directory = self.path / "labels"
        directory.mkdir(exist_ok=True)
        with self._locked():
            self._reload()
            tmp = directory / f".{model_id}.tmp.npz"
            np.savez(tmp, **record)
            digest = file_checksum(tmp)
            os.replace(tmp, directory / f"{model_id}.npz")
            self.entries[model_id]["labels_checksum"] = digest
            self._write_registry()
        self._labels[model_id] = dict(record)
        self.memo.clear()

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

    def _drop_labels(self, model_id: str) -> None:
        self._labels.pop(model_id, None)
        self.memo.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.path / "labels" / f"{model_id}.npz").unlink()

    def _reload(self) -> None:
        """Re-read the registry (under the lock) so concurrent writers don't drop entries."""
        self._registry = _read_registry(self.path)

    def _write_registry(self) -> None:
        _write_registry(self.path, self._registry)
        self.memo.clear()

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return _locked(self.path)


def _read_registry(path: Path) -> dict:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"hub path {path} is a file, not a hub directory")
    registry_path = path / "registry.json"
    if not registry_path.is_file():
        raise FileNotFoundError(f"no hub at {path} (no registry.json); build one with `mll-jax hub build`")
    try:
        registry = json.loads(registry_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{registry_path} is not valid JSON ({error}); restore it or rebuild the hub") from None
    version = registry.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{registry_path} has format version {version}; this mll_jax reads version {FORMAT_VERSION}"
        )
    return registry


def _write_registry(path: Path, registry: dict) -> None:
    tmp = path / ".registry.json.tmp"
    tmp.write_text(json.dumps(registry, indent=1))
    os.replace(tmp, path / "registry.json")


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
