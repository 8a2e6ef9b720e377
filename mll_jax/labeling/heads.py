"""What each head of a labelled model is labelled with, and the heads whose declared name disagrees (method.md §3.1).

Declared head names are matched to nodes too: a head that fires on some concept
but on none under its declared node is reported as mislabelled.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mll_jax.concepts.sdag import SDAG
from mll_jax.hub import Hub
from mll_jax.labeling import rule
from mll_jax.labeling.labels import exclusion

__all__ = ["HeadLabel", "head_labels", "mislabel_report", "mislabelled"]


@dataclasses.dataclass(frozen=True)
class HeadLabel:
    model: str
    head: int
    declared: str
    declared_node: str
    concepts: tuple[str, ...]  # concepts the head fires on
    nodes: tuple[str, ...]  # the smallest node cover of `concepts`
    response: float  # r on its best concept
    accuracy: float  # argmax hit rate on its labelled concepts
    mislabelled: bool


def mislabelled(sdag: SDAG, declared_node: str, concepts) -> bool:
    """Whether a head that fires on `concepts` fires on none under its declared node."""
    return bool(concepts) and not (sdag.concepts_under(declared_node) if declared_node else set()) & set(concepts)


def head_labels(hub: Hub, model_id: str) -> list[HeadLabel]:
    record = hub.labels(model_id)
    if record is None:
        raise ValueError(f"model {model_id!r} is not labelled yet; run `mll-jax label`")
    if rule.EXCLUDED in record:
        raise ValueError(f"model {model_id!r} is excluded: {record[rule.EXCLUDED]}")
    sdag, heads = hub.sdag, hub.entry(model_id).heads
    concept_nodes = sdag.concept_nodes
    column = {c: i for i, c in enumerate(concept_nodes)}
    on = rule.fired(record["response"], record.get("region"))
    out = []
    for j, name in enumerate(heads):
        concepts = tuple(concept_nodes[c] for c in np.flatnonzero(on[j]))
        declared_node = str(record["declared_nodes"][j])
        hits = [record["confusion"][column[c], j] for c in concepts]
        out.append(
            HeadLabel(
                model=model_id,
                head=j,
                declared=name,
                declared_node=declared_node,
                concepts=concepts,
                nodes=tuple(rule.node_cover(sdag, set(concepts))),
                response=float(record["response"][j].max()),
                accuracy=float(np.mean(hits)) if hits else 0.0,
                mislabelled=mislabelled(sdag, declared_node, concepts),
            )
        )
    return out


def mislabel_report(hub: Hub) -> list[HeadLabel]:
    """Heads whose measured label disagrees with their declared name."""
    usable = [i for i in hub.ids("expert") if not exclusion(hub, i)]
    return [h for i in usable for h in head_labels(hub, i) if h.mislabelled]
