"""What each head of a labelled model is labelled with, and the heads whose declared name disagrees (method.md §3.1).

Declared head names are matched to nodes too: a head that fires on some concept
but on none under its declared node is reported as mislabelled. Under a rule whose
region lies around each head's own class a swapped head fires nowhere, so the
report judges every head by majority inside its model's region (`rule.report_fires`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from mll_jax.concepts import wordnet
from mll_jax.concepts.sdag import SDAG
from mll_jax.hub import Hub
from mll_jax.labeling import rule
from mll_jax.labeling.labels import exclusion

__all__ = ["HeadLabel", "declared_synsets", "head_labels", "mislabel_report", "mislabelled"]


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
    on = rule.record_fires(record)
    anywhere = rule.report_fires(record)  # a swapped head under a per-head region fires nowhere
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
                mislabelled=mislabelled(sdag, declared_node, [concept_nodes[c] for c in np.flatnonzero(anywhere[j])]),
            )
        )
    return out


def mislabel_report(hub: Hub) -> list[HeadLabel]:
    """Heads whose measured label disagrees with their declared name."""
    usable = [i for i in hub.ids("expert") if not exclusion(hub, i)]
    return [h for i in usable for h in head_labels(hub, i) if h.mislabelled]


@functools.cache
def _ancestors(synset: str) -> frozenset[str]:
    """`synset` and every hypernym above it in WordNet (instance hypernyms included)."""
    return frozenset(s.name() for path in wordnet.wordnet().synset(synset).hypernym_paths() for s in path)


def _related(a: str, b: str) -> bool:
    """Whether synsets `a` and `b` are one, or one lies under the other in WordNet."""
    return a in _ancestors(b) or b in _ancestors(a)


def declared_synsets(hub: Hub, model_id: str, examples: int = 12) -> dict:
    """How a model whose heads are declared by WordNet synset (a pretrained ImageNet classifier, `tench.n.01`) met
    the store's concepts: heads whose synset is related to some store concept at all (one of them, or under or
    above one in WordNet), heads declared as a store concept exactly and how many of those fire on it (recall),
    heads that fire, and of those how many fire only on concepts related to their synset (agreeing) or on none
    (disagreeing, listed as `declared -> measured`)."""
    heads = head_labels(hub, model_id)
    if not all(".n." in h.declared for h in heads):
        raise ValueError(f"model {model_id!r} declares heads by name, not by WordNet synset; see mislabel_report")
    concepts = hub.sdag.concept_nodes
    store = frozenset(concepts)
    exact = [h for h in heads if h.declared in store]
    fired = [h for h in heads if h.concepts]
    agreeing = [h for h in fired if all(_related(h.declared, c) for c in h.concepts)]
    disagreeing = [h for h in fired if not any(_related(h.declared, c) for c in h.concepts)]
    return {
        "heads": len(heads),
        "heads_with_store_concepts": sum(any(_related(h.declared, c) for c in concepts) for h in heads),
        "heads_declared_as_a_store_concept": len(exact),
        "declared_concept_recall": float(np.mean([h.declared in h.concepts for h in exact])) if exact else None,
        "heads_that_fire": len(fired),
        "fired_heads_agreeing": len(agreeing),
        "fired_heads_disagreeing": len(disagreeing),
        "disagreeing": [f"{h.declared} -> {', '.join(h.concepts)}" for h in disagreeing[:examples]],
        "agreeing": [f"{h.declared} -> {', '.join(h.concepts)}" for h in agreeing[:examples]],
    }
