"""Candidates (method.md §3.2): per task class, the (model, heads) that fire on it and on no other class.

They come from the concept index: only the rows of the task's concepts are read.
A class has at most `max_candidates` candidates (the general model included): the
experts with the most labelling evidence (`evidence`), so CHCO's cost does not grow
with the hub.
"""

from __future__ import annotations

from collections import defaultdict

from mll_jax.concepts import task as task_lib
from mll_jax.hub.hub import Hub
from mll_jax.selection.types import Candidate


def general_heads(hub: Hub) -> dict[str, int]:
    """The general model's head for each SDAG node it declares (memoised by the hub)."""

    def read() -> dict[str, int]:
        record = hub.labels(hub.general_id) if hub.general_id and hub.general_id not in hub.excluded() else None
        return {str(node): j for j, node in enumerate(record["declared_nodes"])} if record is not None else {}

    return hub.memo.get("general heads", read)


def general_candidate(hub: Hub, cls: task_lib.TaskClass) -> Candidate | None:
    """The general model's heads for every concept of `cls` (in SDAG concept order), or None if it lacks one."""
    heads = general_heads(hub)
    if not all(c in heads for c in cls.concepts):
        return None
    return Candidate(hub.general_id, tuple(heads[c] for c in hub.sdag.concept_nodes if c in cls.concepts))


def candidates(
    hub: Hub,
    classes: list[task_lib.TaskClass],
    patch_every_class: bool = True,
    max_candidates: int | None = None,
) -> list[list[Candidate]]:
    """Per class: (expert, heads) that fire on it and on no other class of the task (the best by `evidence`,
    kept in hub order, so that the class has at most `max_candidates` candidates); then the general model
    (for every class, or with `patch_every_class` False only for a class no expert covers)."""
    class_of = {c: k for k, cls in enumerate(classes) for c in cls.concepts}
    fires_on: dict[tuple[str, int], set[int]] = defaultdict(set)
    hits: dict[tuple[str, int], float] = defaultdict(float)
    for concept, model, head, _, hit in hub.registry.concept_rows(class_of):  # in hub order
        fires_on[model, head].add(class_of[concept])
        hits[model, head] += hit
    per_class: list[dict[str, list[int]]] = [{} for _ in classes]
    for (model, head), ks in fires_on.items():
        if len(ks) == 1:
            per_class[next(iter(ks))].setdefault(model, []).append(head)
    out: list[list[Candidate]] = []
    for cls, by_model in zip(classes, per_class):
        cands = [Candidate(m, tuple(sorted(hs))) for m, hs in by_model.items()]
        general = general_candidate(hub, cls) if patch_every_class or not cands else None
        room = None if max_candidates is None else max_candidates - (general is not None)
        if room is not None and len(cands) > room:
            score = {c: evidence(c, hits, len(cls.concepts)) for c in cands}
            kept = set(sorted(cands, key=lambda c: -score[c])[:room])  # stable: ties keep hub order
            cands = [c for c in cands if c in kept]
        out.append(cands + [general] if general is not None else cands)
    return out


def evidence(candidate: Candidate, hits: dict[tuple[str, int], float], num_concepts: int) -> float:
    """The share of the class's store samples (concepts weighted equally) on which the candidate's model
    puts its argmax on one of the candidate's heads, from the labelling's confusion rows."""
    return sum(hits[candidate.model, j] for j in candidate.heads) / num_concepts
