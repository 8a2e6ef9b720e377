"""Selection (DESIGN 3.2): candidates from model labels, CHCO on the label cache.

`select(hub, names)` resolves the names, lists candidates per class, gathers the
candidate scores of the classes' node samples from the label cache (no inference),
and runs CHCO. The general model is a candidate for every class, and the only one
for a class no expert covers ("uncovered").
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np

from mll_jax import chco, labeling
from mll_jax import task as task_lib
from mll_jax.hub import Hub
from mll_jax.store import fit_mask

SAMPLES_PER_CLASS = 400  # node samples per class, half to fit and half to validate
EPS = 1e-6


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

    @property
    def models(self) -> list[str]:
        return sorted({c.model for cs in self.choices for c in cs})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Selection:
        doc = dict(doc)
        doc["choices"] = [[Choice(**c) for c in cs] for cs in doc["choices"]]
        return cls(**doc)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    def table(self) -> str:
        rows = [f"{'class':14s} {'model':28s} {'heads':28s} {'weight':>6s} {'val acc':>7s}"]
        for name, cs, acc in zip(self.classes, self.choices, self.val_accuracy_per_class):
            for c in cs:
                rows.append(f"{name:14s} {c.model:28s} {','.join(c.head_names)[:28]:28s} {c.weight:6.2f} {acc:7.3f}")
        rows.append(f"models used: {', '.join(self.models)}; uncovered: {', '.join(self.uncovered) or '-'}")
        return "\n".join(rows)


def fired(record: dict) -> np.ndarray:
    """bool [H, num_concepts]: the concepts each head is labelled with."""
    return record["response"] >= labeling.THRESHOLD


def candidates(hub: Hub, classes: list[task_lib.TaskClass]) -> list[list[Candidate]]:
    """Per class: (expert, heads) that fire on it and on no other class of the task; then the general model."""
    concept_nodes = hub.sdag.concept_nodes
    column = {c: i for i, c in enumerate(concept_nodes)}
    class_of = np.full(len(concept_nodes), -1)
    for k, cls in enumerate(classes):
        class_of[[column[c] for c in cls.concepts]] = k
    out: list[list[Candidate]] = [[] for _ in classes]
    for model_id in hub.ids("expert"):
        record = hub.labels(model_id)
        if record is None:
            continue
        hits = fired(record)[:, class_of >= 0]  # [H, concepts of the task]
        owner = class_of[class_of >= 0]
        for k in range(len(classes)):
            on_k = hits[:, owner == k].any(1)
            on_other = hits[:, owner != k].any(1)
            heads = tuple(int(j) for j in np.flatnonzero(on_k & ~on_other))
            if heads:
                out[k].append(Candidate(model_id, heads))
    general = hub.general_id
    if general is not None:
        declared = [str(n) for n in hub.labels(general)["declared_nodes"]]
        for k, cls in enumerate(classes):
            heads = tuple(j for j, node in enumerate(declared) if node in cls.concepts)
            if heads:
                out[k].append(Candidate(general, heads))
    return out


def _bucket(n: int, smallest: int = 2) -> int:
    return max(smallest, 1 << (n - 1).bit_length())


def node_samples(
    hub: Hub, classes: list[task_lib.TaskClass], per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Store indices and class labels: up to `per_class` items per class, stratified over its concepts."""
    rng = np.random.default_rng(seed)
    index, labels = [], []
    for k, cls in enumerate(classes):
        pool = [hub.sdag.own[c] for c in sorted(cls.concepts)]
        quota = -(-per_class // len(pool))
        chosen = np.concatenate([rng.permutation(p)[:quota] for p in pool])[:per_class]
        index.append(chosen)
        labels.append(np.full(len(chosen), k))
    return np.concatenate(index), np.concatenate(labels)


def build_problem(hub: Hub, classes, cands, per_class: int = SAMPLES_PER_CLASS, seed: int = 0):
    """Padded CHCO arrays for one task, gathered from the label cache; and the model list."""
    models = sorted({c.model for cs in cands for c in cs})
    K, C, M = _bucket(len(classes)), _bucket(max(len(cs) for cs in cands)), _bucket(len(models), 1)
    index, labels = node_samples(hub, classes, per_class, seed)
    N = K * per_class
    scores = np.zeros((N, K, C), np.float32)
    cand_mask = np.zeros((K, C), bool)
    cand_model = np.zeros((K, C), np.int32)
    for k, cs in enumerate(cands):
        for c, cand in enumerate(cs):
            probs = hub.labels(cand.model)["probs"][index][:, list(cand.heads)].astype(np.float32)
            scores[: len(index), k, c] = np.log(probs.sum(1) + EPS)
            cand_mask[k, c] = True
            cand_model[k, c] = models.index(cand.model)
    params = np.array([hub.entry(m)["params"] for m in models], np.float32)
    cost = np.zeros(M, np.float32)
    cost[: len(models)] = params / max(e["params"] for e in hub.entries.values())
    is_fit = fit_mask(len(hub.store))[index]
    fit = np.zeros(N, np.float32)
    val = np.zeros(N, np.float32)
    fit[: len(index)], val[: len(index)] = is_fit, ~is_fit
    padded_labels = np.zeros(N, np.int32)
    padded_labels[: len(index)] = labels
    problem = {
        "scores": scores,
        "cand_mask": cand_mask,
        "cand_model": cand_model,
        "labels": padded_labels,
        "model_cost": cost,
        "fit": fit,
        "val": val,
    }
    return problem, models


def select(hub: Hub, names: list[str], config: chco.Config = chco.Config(), seed: int = 0) -> Selection:
    """Choose heads from the hub's experts for the task whose classes are `names`."""
    classes = task_lib.resolve(hub.sdag, names)
    missing = [i for i in hub.entries if hub.labels(i) is None]
    if missing:
        raise ValueError(f"models {missing} are not labelled; run `mll-jax label` first")
    cands = candidates(hub, classes)
    empty = [cls.name for cls, cs in zip(classes, cands) if not cs]
    if empty:
        raise task_lib.TaskError(f"no expert or general model can score {empty}; add a general model to the hub")
    problem, models = build_problem(hub, classes, cands, seed=seed)
    result = jax.device_get(chco.solve(problem, jax.random.key(seed), config))
    return make_selection(hub, classes, cands, models, result)


def make_selection(hub: Hub, classes, cands, models: list[str], result: dict) -> Selection:
    """A Selection from solver output (discrete `w`, `t`, `b`, validation accuracies)."""
    general = hub.general_id
    choices = []
    for k, cs in enumerate(cands):
        chosen = []
        for c, cand in enumerate(cs):
            if result["w"][k, c] > 0:
                heads = hub.entry(cand.model)["heads"]
                chosen.append(
                    Choice(cand.model, list(cand.heads), [heads[j] for j in cand.heads], float(result["w"][k, c]))
                )
        choices.append(chosen)
    used = {c.model for cs in choices for c in cs}
    return Selection(
        classes=[c.name for c in classes],
        nodes=[c.node for c in classes],
        concepts=[sorted(c.concepts) for c in classes],
        choices=choices,
        temperatures={m: float(result["t"][i]) for i, m in enumerate(models) if m in used},
        biases=[float(b) for b in result["b"][: len(classes)]],
        uncovered=[cls.name for cls, cs in zip(classes, cands) if all(c.model == general for c in cs)],
        val_accuracy=float(result["val_accuracy"]),
        val_accuracy_per_class=[float(a) for a in result["val_accuracy_per_class"][: len(classes)]],
        num_candidates=[len(cs) for cs in cands],
    )
