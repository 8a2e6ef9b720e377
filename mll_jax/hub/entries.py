"""What the hub records of a model and of a shared backbone: frozen, typed entries (method.md §2.1).

The database keeps each entry as JSON (`to_json`, the format hubs on disk have
always had); every reader gets these records instead.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ROLES", "BackboneEntry", "ModelEntry"]

ROLES = ("expert", "general")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the hub: how to build it, what its heads declare, where its parameters are."""

    id: str
    arch: str
    config: dict
    heads: tuple[str, ...]  # declared class name of each output, in order
    input_spec: dict
    role: str  # one of ROLES
    params: int  # its parameters, a shared backbone's included: what running it alone costs
    checksum: str  # of its parameters
    provenance: dict
    added: str = ""  # ISO time it entered the hub
    backbone: str | None = None  # heads only, over this shared backbone's features
    params_in_database: bool = False  # heads over a backbone: a few KB, kept as a database row, not a checkpoint
    labels_checksum: str | None = None  # sha256 of its label record; None: not labelled

    def to_json(self) -> dict:
        """The entry as the database stores it (the layout of every hub so far: no id, no label state)."""
        doc = {
            "arch": self.arch,
            "config": self.config,
            "heads": list(self.heads),
            "input_spec": self.input_spec,
            "role": self.role,
            "params": self.params,
            "checksum": self.checksum,
            "provenance": self.provenance,
            "added": self.added,
        }
        if self.backbone is not None:
            doc["backbone"] = self.backbone
        if self.params_in_database:
            doc["stored"] = "registry"  # the word hubs on disk use
        return doc

    @classmethod
    def from_json(cls, model_id: str, doc: dict, labels_checksum: str | None = None) -> ModelEntry:
        return cls(
            id=model_id,
            arch=doc["arch"],
            config=doc["config"],
            heads=tuple(doc["heads"]),
            input_spec=doc["input_spec"],
            role=doc["role"],
            params=int(doc["params"]),
            checksum=doc["checksum"],
            provenance=doc.get("provenance", {}),
            added=doc.get("added", ""),
            backbone=doc.get("backbone"),
            params_in_database=doc.get("stored") == "registry",
            labels_checksum=labels_checksum,
        )


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """A feature extractor shared by several experts' heads (its own head is kept, unused)."""

    id: str
    arch: str
    config: dict
    num_heads: int
    features: int  # the width of what it gives its heads
    input_spec: dict
    params: int
    checksum: str
    provenance: dict

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "id"}

    @classmethod
    def from_json(cls, backbone_id: str, doc: dict) -> BackboneEntry:
        return cls(id=backbone_id, **{f.name: doc[f.name] for f in dataclasses.fields(cls) if f.name != "id"})
