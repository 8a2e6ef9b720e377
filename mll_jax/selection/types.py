"""What selection returns: candidates, the chosen heads per class, and the `Selection` (JSON-serialisable)."""

from __future__ import annotations

import dataclasses
import json

__all__ = ["Candidate", "Choice", "Selection"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    model: str
    heads: tuple[int, ...]


@dataclasses.dataclass
class Choice:
    model: str
    heads: list[int]
    head_names: list[str]
    weight: float


@dataclasses.dataclass
class Selection:
    classes: list[str]
    nodes: list[str]
    concepts: list[list[str]]
    choices: list[list[Choice]]  # per class
    temperatures: dict[str, float]  # log-temperature t per used model
    biases: list[float]
    uncovered: list[str]
    val_accuracy: float
    val_accuracy_per_class: list[float]
    num_candidates: list[int]
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> why it was not considered
    considered: list[list[dict]] = dataclasses.field(default_factory=list)  # per class: model, heads, weight

    @property
    def models(self) -> list[str]:
        return sorted({c.model for cs in self.choices for c in cs})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict | str) -> Selection:
        """A Selection from `to_json`'s dict, or from the JSON text `dumps` writes."""
        if isinstance(doc, str | bytes):
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError as error:
                raise ValueError(f"not a Selection: the text is not JSON ({error})") from None
        if not isinstance(doc, dict):
            raise ValueError(f"not a Selection: expected a JSON object of its fields, got {type(doc).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        optional = {n for n, f in fields.items() if f.default_factory is not dataclasses.MISSING}
        required = set(fields) - optional
        missing, unknown = sorted(required - set(doc)), sorted(set(doc) - set(fields))
        if missing or unknown:
            raise ValueError(
                f"not a Selection: {'missing fields ' + ', '.join(missing) if missing else ''}"
                f"{'; ' if missing and unknown else ''}{'unknown fields ' + ', '.join(unknown) if unknown else ''}"
                " (write it with Selection.to_json or dumps)"
            )
        try:
            choices = [[Choice(**c) for c in cs] for cs in doc["choices"]]
        except TypeError as error:
            raise ValueError(f"not a Selection: `choices` must be, per class, a list of choices ({error})") from None
        return cls(**{**doc, "choices": choices})

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    def table(self) -> str:
        rows = [f"{'class':14s} {'model':28s} {'heads':28s} {'weight':>6s} {'val acc':>7s}"]
        for name, cs, acc in zip(self.classes, self.choices, self.val_accuracy_per_class):
            for c in cs:
                rows.append(f"{name:14s} {c.model:28s} {','.join(c.head_names)[:28]:28s} {c.weight:6.2f} {acc:7.3f}")
        rows.append(f"models used: {', '.join(self.models)}; uncovered: {', '.join(self.uncovered) or '-'}")
        return "\n".join(rows)

    def explain(self) -> str:
        """The table, then every candidate CHCO weighed, its continuous weight, and the calibration."""
        rows = [self.table(), "", f"validation accuracy {self.val_accuracy:.3f}"]
        for name, node, considered, b in zip(self.classes, self.nodes, self.considered, self.biases):
            rows.append(f"{name} -> {node}  (bias {b:+.2f}; {len(considered)} candidates)")
            for c in sorted(considered, key=lambda c: -c["weight"]):
                rows.append(f"    {c['weight']:5.2f}  {c['model']:28s} heads {c['heads']}")
        rows.append("log-temperatures: " + ", ".join(f"{m} {t:+.2f}" for m, t in self.temperatures.items()))
        return "\n".join(rows)
