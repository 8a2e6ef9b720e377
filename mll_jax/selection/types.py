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
    nodes: list[str | None]  # None for a class by name
    concepts: list[list[str]]
    choices: list[list[Choice]]  # per class
    temperatures: dict[str, float]  # log-temperature t per used model
    biases: list[float]
    uncovered: list[str]
    val_accuracy: float | None  # CHCO's on the matched classes' node samples (None: fewer than 2 matched classes)
    val_accuracy_per_class: list[float | None]  # None for a class by name
    num_candidates: list[int]
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> why it was not considered
    considered: list[list[dict]] = dataclasses.field(default_factory=list)  # per class: model, heads, weight
    # Classes no SDAG node matches, answered by `text_model`'s head for their name (`selection/by_name.py`), and
    # the nodes nearest to each by meaning (listed, not used).
    by_name: list[str] = dataclasses.field(default_factory=list)
    close: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    text_model: str | None = None
    combination: str = "fitted"  # how the choices were weighed (`SolverConfig.combination`): "pool" fits nothing

    @property
    def models(self) -> list[str]:
        """Every model the classifier runs: the chosen heads' models, and the text model for classes by name."""
        return sorted({c.model for cs in self.choices for c in cs} | ({self.text_model} if self.by_name else set()))

    @property
    def expert_models(self) -> list[str]:
        """The models of the chosen heads (CHCO's selection for the matched classes)."""
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
        optional = {n for n, f in fields.items() if (f.default, f.default_factory) != (dataclasses.MISSING,) * 2}
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
            if name in self.by_name:
                rows.append(f"{name:14s} {self.text_model:28s} {'text: ' + name:28s} {'':>6s} {'-':>7s}")
        rows.append(f"models used: {', '.join(self.models)}; uncovered: {', '.join(self.uncovered) or '-'}")
        if self.by_name:
            rows.append(f"by name (no SDAG node matches): {', '.join(self.by_name)}")
        return "\n".join(rows)

    def explain(self) -> str:
        """The table, then every candidate CHCO weighed, its continuous weight, and the calibration."""
        accuracy = "-" if self.val_accuracy is None else f"{self.val_accuracy:.3f}"
        pool = self.combination == "pool"
        how = " (a pool: each class's candidates by shares, nothing fitted)" if pool else ""
        rows = [self.table(), "", f"validation accuracy {accuracy}{how}"]
        for name, node, considered, b in zip(self.classes, self.nodes, self.considered, self.biases):
            if name in self.by_name:
                rows.append(
                    f"{name} -> no SDAG node; answered by {self.text_model}'s head for the text {name!r} "
                    f"(closest nodes: {', '.join(self.close.get(name, [])) or '-'})"
                )
                continue
            calibration = "" if pool else f"bias {b:+.2f}; "
            rows.append(f"{name} -> {node}  ({calibration}{len(considered)} candidates)")
            for c in sorted(considered, key=lambda c: -c["weight"]):
                rows.append(f"    {c['weight']:5.2f}  {c['model']:28s} heads {c['heads']}")
        if not pool:
            rows.append("log-temperatures: " + ", ".join(f"{m} {t:+.2f}" for m, t in self.temperatures.items()))
        return "\n".join(rows)
