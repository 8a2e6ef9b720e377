"""Candidates (method.md §3.2): per task class, the (model, heads) that fire on it and on no other class.

They come from the hub's concept index: only rows of the task's concepts are read.
A class has at most `max_candidates` candidates (the general model included): the
experts with the most labelling evidence (`evidence`), so CHCO's cost does not grow
with the hub.
"""

from __future__ import annotations

from collections import defaultdict

from mll_jax.concepts import task as task_lib
from mll_jax.configs.selection import SelectionConfig
from mll_jax.hub import Hub
from mll_jax.selection.types import Candidate

__all__ = ["candidates", "evidence", "general_candidates", "general_heads"]


def general_heads(hub: Hub) -> dict[str, int]:
    """The general model's head for each SDAG node it declares ({} without a usable general model)."""
    general = hub.general_id
    record = hub.labels(general) if general and general not in hub.excluded() else None
    return {str(node): j for j, node in enumerate(record["declared_nodes"])} if record is not None else {}


def general_candidates(hub: Hub, classes: list[task_lib.TaskClass]) -> list[Candidate | None]:
    """Per class, the general model's heads for each of its concepts (in SDAG concept order), or None where the
    general model lacks one."""
    heads = general_heads(hub)
    out = []
    for cls in classes:
        if all(c in heads for c in cls.concepts):
            out.append(Candidate(hub.general_id, tuple(heads[c] for c in hub.sdag.concept_nodes if c in cls.concepts)))
        else:
            out.append(None)
    return out


def candidates(
    hub: Hub, classes: list[task_lib.TaskClass], config: SelectionConfig = SelectionConfig()
) -> list[list[Candidate]]:
    """Per class: (expert, heads) that fire on it and on no other class of the task (the best by `evidence`,
    kept in hub order, so that the class has at most `config.max_candidates` candidates); then the general
    model (for every class, or with `config.patch_every_class` False only for a class no expert covers).

    With a cap, each of the task's concepts reads only its best valid heads: an index scan by hits that skips,
    inside the query, heads firing on another class's concept, and stops after `config.fetch_factor` times the
    cap; then those heads' models' other firings within the task. The read grows only while a model it did not
    reach could still enter a class (`_may_miss`). Without a cap, every row of the task's concepts."""
    class_of = {c: k for k, cls in enumerate(classes) for c in cls.concepts}
    if config.max_candidates is None:
        rows = [(c, m, h, hit) for c, m, h, _, hit in hub.concept_rows(class_of)]
        return _candidates(hub, classes, class_of, rows, config)[0]
    limit = config.fetch_factor * config.max_candidates
    while True:
        best = hub.valid_rows({c: [o for o in class_of if class_of[o] != k] for c, k in class_of.items()}, limit)
        rows = hub.firings({m for found in best.values() for m, _, _ in found}, class_of)
        out, weakest = _candidates(hub, classes, class_of, rows, config)
        if not any(_may_miss(w, cls, best, limit) for w, cls in zip(weakest, classes)):
            return out
        limit *= 4


def _may_miss(weakest: float | None, cls: task_lib.TaskClass, best: dict, limit: int) -> bool:
    """Whether a model the read did not reach could still enter the class: the class has room left (`weakest`
    None), or the evidence an unread model can have (at most the last hits read on each concept whose read was
    cut short) is above that of the weakest candidate kept. Exact unless a model's several heads share one
    concept's samples; ties with an unread model go to the earlier model, as the read is in hub order."""
    cut = [best[c][-1][2] for c in cls.concepts if len(best[c]) == limit]
    return bool(cut) and (weakest is None or weakest < sum(cut) / len(cls.concepts))


def _candidates(hub: Hub, classes, class_of, rows, config: SelectionConfig):
    """Candidates from concept index rows (concept, model, head, hits), and per class the evidence of the weakest
    expert candidate kept when the cap was reached (None where the class has room for more)."""
    fires_on: dict[tuple[str, int], set[int]] = defaultdict(set)
    hits: dict[tuple[str, int], float] = defaultdict(float)
    for concept, model, head, hit in rows:
        fires_on[model, head].add(class_of[concept])
        hits[model, head] += hit
    order = hub.order({m for m, _ in fires_on}) if fires_on else {}
    per_class: list[dict[str, list[int]]] = [{} for _ in classes]
    for model, head in sorted(fires_on, key=lambda mh: (order[mh[0]], mh[1])):  # hub order
        ks = fires_on[model, head]
        if len(ks) == 1:
            per_class[next(iter(ks))].setdefault(model, []).append(head)
    out, weakest = [], []
    for cls, by_model, general in zip(classes, per_class, general_candidates(hub, classes)):
        cands = [Candidate(m, tuple(hs)) for m, hs in by_model.items()]
        if not (config.patch_every_class or not cands):
            general = None
        room = None if config.max_candidates is None else config.max_candidates - (general is not None)
        weakest.append(None)
        if room is not None and len(cands) >= room:
            score = {c: evidence(c, hits, len(cls.concepts)) for c in cands}
            kept = set(sorted(cands, key=lambda c: -score[c])[:room])  # stable: ties keep hub order
            cands = [c for c in cands if c in kept]
            weakest[-1] = min((score[c] for c in kept), default=float("inf"))  # no room: nothing can enter
        out.append(cands + [general] if general is not None else cands)
    return out, weakest


def evidence(candidate: Candidate, hits: dict[tuple[str, int], float], num_concepts: int) -> float:
    """The share of the class's store samples (concepts weighted equally) on which the candidate's model
    puts its argmax on one of the candidate's heads, from the labelling's confusion rows."""
    return sum(hits[candidate.model, j] for j in candidate.heads) / num_concepts
