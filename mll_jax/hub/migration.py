"""Format-1 hubs (the whole registry in `registry.json`) become database hubs, once and atomically (method.md §2.1).

The database is filled under a temporary name and renamed into place (the commit
point: a killed migration leaves the old hub as it was); then the old file is kept
as `registry.v1.json` and `registry.json` becomes a pointer that older releases
reject with their format-version error. A migration killed after its commit point
is finished by the next open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mll_jax.concepts.sdag import SDAG
from mll_jax.hub import concept_index, files, sqlite
from mll_jax.hub.database import FORMAT_VERSION, UPGRADABLE_VERSION
from mll_jax.hub.entries import BackboneEntry, ModelEntry

__all__ = ["BACKUP", "LEGACY", "migrate", "read_legacy", "write_pointer"]

LEGACY, BACKUP = "registry.json", "registry.v1.json"
FORMAT_1_FIRES_AT = 0.5  # the firing rule every format-1 hub was labelled under (method.md §3.1, unchanged since)


def read_legacy(directory: Path) -> dict | None:
    """The format-1 registry in `registry.json`, or None if that file is the pointer a migration leaves."""
    path = directory / LEGACY
    try:
        legacy = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it or rebuild the hub") from None
    version = legacy.get("format_version")
    if version in (UPGRADABLE_VERSION, FORMAT_VERSION):  # the pointer a migration leaves
        return None
    if version != 1:
        raise ValueError(
            f"{path} has format version {version}; this mll_jax reads versions 1, {UPGRADABLE_VERSION} and "
            f"{FORMAT_VERSION}"
        )
    return legacy


def migrate(directory: Path) -> None:
    """Turn the format-1 hub in `directory` into a database hub (the caller holds the hub's lock)."""
    legacy = read_legacy(directory)
    if legacy is not None and not (directory / sqlite.FILE).exists():
        tmp_path = directory / f".{sqlite.FILE}.tmp"
        staging = sqlite.new_file(tmp_path)
        staging.put_meta({"format_version": str(FORMAT_VERSION), "store": json.dumps(legacy["store"])})
        backbones = {i: BackboneEntry.from_json(i, e) for i, e in legacy.get("backbones", {}).items()}
        for entry in backbones.values():
            staging.put_backbone(entry)
        sdag = SDAG.load(directory)
        for model_id, doc in legacy["models"].items():
            entry = ModelEntry.from_json(model_id, doc)
            staging.put_model(entry, _signature(entry))
            staging.set_labels(model_id, *_label_state(directory, sdag, entry, doc.get("labels_checksum")))
        staging.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp_path}{suffix}").unlink(missing_ok=True)
        os.replace(tmp_path, directory / sqlite.FILE)
    if legacy is not None:  # also finishes a migration killed after its commit point
        backup = directory / f".{BACKUP}.tmp"
        backup.write_text((directory / LEGACY).read_text())
        os.replace(backup, directory / BACKUP)
        write_pointer(directory)


def write_pointer(directory: Path) -> None:
    """`registry.json` saying where the registry is: older releases read its version and stop with a clear error."""
    pointer = {
        "format_version": FORMAT_VERSION,
        "registry": sqlite.FILE,
        "note": f"this hub's registry is the SQLite database {sqlite.FILE} (or the server database.json names); "
        f"it needs mll_jax with hub format {FORMAT_VERSION}",
    }
    tmp = directory / f".{LEGACY}.tmp"
    tmp.write_text(json.dumps(pointer, indent=1))
    os.replace(tmp, directory / LEGACY)


def _signature(entry: ModelEntry) -> str:
    """A format-1 entry's engine signature; an entry that does not build runs alone."""
    from mll_jax import engine, nets

    try:
        abstract = nets.abstract(entry.arch, entry.config, len(entry.heads))
        return engine.signature(engine.Member(entry.id, abstract, entry.input_spec, entry.backbone))
    except (ValueError, TypeError, KeyError):
        return f"alone:{entry.id}"


def _label_state(directory: Path, sdag: SDAG, entry: ModelEntry, expected: str | None):
    """A format-1 entry's label checksum, why it is excluded ('' if not) and concept index rows, from its record."""
    record_path = directory / "labels" / f"{entry.id}.npz"
    if not record_path.is_file() or expected is None or files.checksum(record_path) != expected:
        return None, "", []  # not labelled, or a record the registry.json did not vouch for: label it again
    with np.load(record_path, allow_pickle=False) as record:
        if "problem" in record:  # the key format-1 records give the reason a model is excluded under
            return expected, str(record["problem"]), []
        if entry.role != "expert":
            return expected, "", []
        rows = concept_index.rows(
            record["response"], record["confusion"], sdag.concept_nodes, record["response"] >= FORMAT_1_FIRES_AT
        )
    return expected, "", rows
