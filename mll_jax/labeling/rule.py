"""Labelling's rule (method.md §3.1): from a model's store probabilities to what each head is labelled with.

For head j and concept c (a node with samples of its own) the response is
r(j, c) = mean of P[x, j] over the store samples x of c. Head j fires on concept c
iff r(j, c) >= FIRES_AT. A model's heads share one softmax, so at most one head per
model can fire on a concept: a head is labelled with the concepts on which it takes
the majority of the model's belief, and is low (< 0.5) on every other concept,
siblings included. The head's node label is the smallest set of SDAG nodes whose
concepts are exactly its labelled concepts (sandal + sneaker -> shoe.n.01).

A head often also takes the majority on concepts its model never saw (a footwear
model calls most bags "sandal"); that is what the head does, so it is part of the
label, and selection only uses a head for a class when it fires on no other class
of the task. A hub whose store spans several domains bounds that (`LabelRule`):
a head may fire only on concepts near its model's declared classes (`region`), so
a digit expert that calls dogs "7" is not labelled a dog expert; or near its own
declared class (`HEAD_REGION`), so a llama head that the store's one beaver drawing
fools is not labelled a beaver head either. Inside a region a rule may fire by
plurality instead of majority (`fired`).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from mll_jax.concepts import matching
from mll_jax.concepts.sdag import SDAG
from mll_jax.configs.specs import LabelRule
from mll_jax.hub import concept_index

__all__ = [
    "EXCLUDED",
    "FIRES_AT",
    "HEAD_REGION",
    "PLURALITY",
    "confusion",
    "fired",
    "index_rows",
    "marks",
    "node_cover",
    "record",
    "record_fires",
    "region",
    "report_fires",
    "responses",
    "untrusted",
]

FIRES_AT = 0.5  # fixed with the rule (a head fires on most of the concept's samples), not tuned
EXCLUDED = "problem"  # the key of a label record that excludes its model, holding why (the name records on disk use)
PLURALITY = "plurality"  # the key a record made under `LabelRule(fires="plurality")` holds (records before it: none)
HEAD_REGION = "head_region"  # the key of each head's own region, under `LabelRule(region_of="head")`


def responses(probs: np.ndarray, concepts: np.ndarray, num_concepts: int) -> np.ndarray:
    """r [H, num_concepts]: mean probability of each head over each concept's samples."""
    onehot = np.eye(num_concepts, dtype=np.float32)[concepts]  # [N, K]
    counts = np.maximum(onehot.sum(0), 1)
    return (probs.astype(np.float32).T @ onehot) / counts


def confusion(probs: np.ndarray, concepts: np.ndarray, num_concepts: int) -> np.ndarray:
    """[num_concepts, H]: fraction of each concept's samples on which each head is the argmax."""
    hits = np.eye(probs.shape[1], dtype=np.float32)[probs.argmax(1)]
    onehot = np.eye(num_concepts, dtype=np.float32)[concepts]
    return (onehot.T @ hits) / np.maximum(onehot.sum(0), 1)[:, None]


def fired(response: np.ndarray, region_mask: np.ndarray | None = None, plurality: bool = False) -> np.ndarray:
    """bool [H, concepts]: which heads fire on which concepts (only inside `region_mask` [concepts] if given).

    By default a head fires where r >= FIRES_AT; with `plurality` (`LabelRule.fires`), the head with the largest r
    of its model fires on each concept (the first such head on a tie), so still at most one head per model."""
    if plurality:
        on = np.zeros(response.shape, dtype=bool)
        on[response.argmax(0), np.arange(response.shape[1])] = True
    else:
        on = response >= FIRES_AT
    return on if region_mask is None else on & region_mask


def record_fires(record: dict[str, np.ndarray]) -> np.ndarray:
    """bool [H, concepts]: which heads fire on which concepts, by the rule `record` was made under."""
    on = fired(record["response"], record.get("region"), PLURALITY in record)
    return on & record[HEAD_REGION] if HEAD_REGION in record else on


def report_fires(record: dict[str, np.ndarray]) -> np.ndarray:
    """bool [H, concepts]: the mislabel report's evidence, whatever the rule's own firing and head regions: heads
    that take the majority of their model's belief on a concept of the model's region. A swapped head fires
    nowhere under its own region, and being a model's strongest head on a sibling's picture (plurality) is no
    evidence that a name is wrong."""
    return fired(record["response"], record.get("region"))


def marks(sdag: SDAG, declared_nodes: list[str], label_rule: LabelRule) -> dict[str, np.ndarray]:
    """What a record keeps of `label_rule` beside its responses: "region" [concepts] around all of a model's
    `declared_nodes`, with `region_of` "head" also HEAD_REGION [H, concepts] around each head's own, and the
    PLURALITY mark (none of them for the default rule)."""
    out = {}
    if (steps := label_rule.region_steps) is not None:
        if label_rule.region_of == "head":
            out[HEAD_REGION] = np.stack([region(sdag, [node], steps) for node in declared_nodes])
            out["region"] = out[HEAD_REGION].any(0)  # the model's region is the union of its heads'
        else:
            out["region"] = region(sdag, declared_nodes, steps)
    if label_rule.fires == "plurality":
        out[PLURALITY] = np.array(True)
    return out


def region(sdag: SDAG, declared_nodes: list[str], steps: int | None) -> np.ndarray | None:
    """bool [concepts]: the concepts under a node at most `steps` hypernym steps above one of `declared_nodes`
    (None with `steps` None: no bound)."""
    if steps is None:
        return None
    near = {v for v in declared_nodes if v}
    for _ in range(steps):
        near |= {parent for v in near for parent in sdag.graph.predecessors(v)}
    allowed = set().union(*(sdag.concepts_under(v) for v in near))
    return np.array([c in allowed for c in sdag.concept_nodes])


def index_rows(record: dict[str, np.ndarray], concept_nodes: list[str]) -> list[tuple[str, int, float, float]]:
    """The concept index rows (concept, head, response, hits) an expert's label record gives."""
    if EXCLUDED in record:
        return []
    return concept_index.rows(record["response"], record["confusion"], concept_nodes, record_fires(record))


def node_cover(sdag: SDAG, concepts: set[str] | frozenset[str]) -> list[str]:
    """Fewest, highest SDAG nodes whose concept sets together are exactly `concepts`."""
    fits = [v for v in sdag.graph if (under := sdag.concepts_under(v)) and under <= concepts]
    top = {v for v in fits if not any(sdag.concepts_under(v) < sdag.concepts_under(u) for u in fits)}
    # Of nodes with the same concepts (bag.n.04 and its lone ancestors) keep the most specific.
    top = {v for v in top if not any(u != v and nx.has_path(sdag.graph, v, u) for u in top)}
    # A concept whose node also covers other concepts (shirt.n.01 over T-shirts) stands for itself.
    return sorted(top | {c for c in concepts if not any(c in sdag.concepts_under(v) for v in top)})


def untrusted(probs: np.ndarray) -> str:
    """Why a model's outputs cannot be trusted ('' if they can)."""
    if not np.isfinite(probs).all():
        return f"outputs NaN or Inf on {int((~np.isfinite(probs)).any(1).sum())} store samples"
    if probs.std(0).max() < 1e-6:
        return "outputs the same probabilities for every input"
    return ""


def record(
    sdag: SDAG, store_concepts: np.ndarray, probs: np.ndarray, declared: list[str], label_rule: LabelRule = LabelRule()
) -> dict[str, np.ndarray]:
    """A model's label record from its store probabilities [N, H] and declared head names, under the hub's
    `label_rule`, whose `marks` it keeps."""
    num_concepts = len(sdag.concept_nodes)
    nodes = [matching.declared_node(sdag, name) or "" for name in declared]
    probs = probs.astype(np.float16)  # the label cache; everything below derives from it
    out = {
        "probs": probs,
        "response": responses(probs, store_concepts, num_concepts),
        "confusion": confusion(probs, store_concepts, num_concepts),
        "declared_nodes": np.array(nodes, dtype=str),
    }
    return out | marks(sdag, nodes, label_rule)
