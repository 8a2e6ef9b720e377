"""Hub verification: find every broken entry, and repair only those.

Checks: the hub's database (its integrity check), database entries against
the files on disk (checkpoints and label records without an entry, entries without
a checkpoint), parameter checksums, label record checksums and shapes against the
SDAG and the store, experts excluded at labelling (NaN/Inf or constant outputs,
checkpoints that do not load), the SDAG itself, and temporary files left by a
killed writer.
"""

from __future__ import annotations

import dataclasses
import shutil

from mll_jax.hub import Hub
from mll_jax.labeling import labels, rule

__all__ = ["REPAIRS", "Fault", "repair", "verify"]


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str  # see REPAIRS
    model: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:22s} {self.model or '-':28s} {self.detail}"


# kind -> what --repair does
REPAIRS = {
    "missing checkpoint": "remove the entry",
    "corrupt checkpoint": "remove the entry",
    "bad expert": "remove the entry",
    "unlabelled": "label the model",
    "corrupt labels": "label the model again",
    "orphan checkpoint": "delete the folder",
    "orphan labels": "delete the file",
    "temporary file": "delete the file",
    "sdag": "rebuild the SDAG",
    "database": "nothing: restore the database (registry.sqlite, or the server's) from a backup",
}


def verify(hub: Hub) -> list[Fault]:
    faults = [Fault("database", None, found) for found in hub.integrity()]
    models_dir, labels_dir = hub.path / "models", hub.path / "labels"
    for leftover in [*hub.path.glob(".*.tmp"), *models_dir.glob(".*"), *labels_dir.glob(".*")]:
        faults.append(Fault("temporary file", None, str(leftover.relative_to(hub.path))))
    try:
        num_concepts = len(hub.sdag.concept_nodes)
    except Exception as error:  # any unreadable SDAG is a fault to report, not a crash
        faults.append(Fault("sdag", None, f"{type(error).__name__}: {error}"))
        num_concepts = None
    for folder in models_dir.glob("[!.]*"):
        if folder.name not in hub.entries:
            faults.append(Fault("orphan checkpoint", folder.name, str(folder.relative_to(hub.path))))
    for record in labels_dir.glob("[!.]*.npz"):
        if record.stem not in hub.entries:
            faults.append(Fault("orphan labels", record.stem, str(record.relative_to(hub.path))))
    for model_id, entry in hub.entries.items():
        try:
            hub.load_model(model_id, reread=True)
        except FileNotFoundError as error:
            faults.append(Fault("missing checkpoint", model_id, str(error)))
            continue
        except ValueError as error:
            faults.append(Fault("corrupt checkpoint", model_id, str(error)))
            continue
        faults += _label_faults(hub, model_id, len(entry.heads), num_concepts)
    return faults


def _label_faults(hub: Hub, model_id: str, num_heads: int, num_concepts: int | None) -> list[Fault]:
    if not hub.has_record(model_id):
        return [Fault("unlabelled", model_id, "no label record")]
    if not hub.labels_valid(model_id):
        return [Fault("corrupt labels", model_id, "label record does not match its recorded checksum")]
    record = hub.labels(model_id, reread=True)  # the file as it is now
    if rule.EXCLUDED in record:
        return [Fault("bad expert", model_id, str(record[rule.EXCLUDED]))]
    expected = {
        "probs": (len(hub.store), num_heads),
        "response": (num_heads, num_concepts),
        "confusion": (num_concepts, num_heads),
        "declared_nodes": (num_heads,),
    }
    wrong = [
        f"{key} {record[key].shape if key in record else 'missing'}, expected {shape}"
        for key, shape in expected.items()
        if key not in record or (num_concepts is not None and record[key].shape != shape)
    ]
    return [Fault("corrupt labels", model_id, "; ".join(wrong))] if wrong else []


def repair(hub: Hub, faults: list[Fault]) -> list[str]:
    """Fix `faults` (from `verify`); returns what was done. Healthy entries are not touched."""
    done, relabel = [], []
    for fault in faults:
        if fault.kind in ("missing checkpoint", "corrupt checkpoint", "bad expert"):
            hub.remove(fault.model)
            done.append(f"removed {fault.model} ({fault.kind})")
        elif fault.kind in ("unlabelled", "corrupt labels"):
            relabel.append(fault.model)
        elif fault.kind in ("orphan checkpoint", "orphan labels", "temporary file"):
            path = hub.path / fault.detail
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            done.append(f"deleted {fault.detail} ({fault.kind})")
        elif fault.kind == "sdag":
            hub.rebuild_sdag()
            done.append("rebuilt the SDAG")
    if relabel:
        labels.label(hub, relabel, force=True)
        done += [f"labelled {m}" for m in relabel]
    return done
