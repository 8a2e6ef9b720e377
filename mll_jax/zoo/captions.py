"""The paper regime's training data for the general model (method.md §3.4): a small captioned web-like sample.

A web model never saw the node images; it learnt the domain from photos with
loose captions. So the default general model trains on `CaptionRule.per_concept`
images of each store concept drawn from the expert pool (never the store, never
the development split), each captioned independently by the fixed rule: a lemma
of its own concept, of a hypernym below `CaptionRule.top`, or of a random other
store concept. Captions are texts; the model learns them contrastively against
the whole caption vocabulary.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import networkx as nx
import numpy as np

from mll_jax.concepts.sdag import SDAG
from mll_jax.configs.specs import CaptionRule, StoreSpec
from mll_jax.data import store as store_lib

__all__ = ["CaptionedSample", "KINDS", "digest", "draw", "hypernyms", "lemmas", "vocabulary"]

KINDS = ("own", "hypernym", "other")


@dataclasses.dataclass(frozen=True)
class CaptionedSample:
    indices: np.ndarray  # [N] into the expert pool
    images: np.ndarray  # uint8 [N, H, W, C]
    concepts: np.ndarray  # [N] store concept index of each image (what it shows, not what its caption says)
    kinds: np.ndarray  # [N] index into KINDS
    captions: np.ndarray  # [N] index into `vocabulary`
    vocabulary: tuple[str, ...]  # every caption the rule can write, sorted

    def counts(self) -> dict[str, int]:
        return {kind: int(np.sum(self.kinds == i)) for i, kind in enumerate(KINDS)}


def digest(indices: np.ndarray) -> str:
    """A fingerprint of the training indices, kept in the model's provenance (a test redraws and compares)."""
    return hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()[:16]


def _check_rule(rule: CaptionRule, sdag: SDAG) -> None:
    shares = (rule.own, rule.hypernym, rule.other)
    if min(shares) < 0 or not np.isclose(sum(shares), 1.0):
        raise ValueError(f"caption shares own/hypernym/other must be >= 0 and sum to 1, got {shares}")
    if rule.per_concept < 1:
        raise ValueError(f"CaptionRule.per_concept must be at least 1, got {rule.per_concept}")
    if missing := [t for t in _tops(rule.top) if t not in sdag.graph]:
        raise ValueError(f"CaptionRule.top {missing} is not an SDAG node; name a hypernym such as 'artifact.n.01'")


def hypernyms(sdag: SDAG, concept: str, top: str | Sequence[str]) -> list[str]:
    """The concept's hypernyms on its paths to the root that lie strictly below `top` (or below one of its
    nodes: a cut per domain), sorted."""
    below = set().union(*(nx.descendants(sdag.graph, t) for t in _tops(top)))
    return sorted(v for v in nx.ancestors(sdag.graph, concept) if v in below)


def _tops(top: str | Sequence[str]) -> tuple[str, ...]:
    return (top,) if isinstance(top, str) else tuple(top)


def lemmas(sdag: SDAG, node: str) -> list[str]:
    return list(sdag.graph.nodes[node]["lemmas"])


def vocabulary(sdag: SDAG, rule: CaptionRule) -> tuple[str, ...]:
    """Every caption the rule can write: the store concepts' lemmas and their hypernyms' below `rule.top`."""
    nodes = set(sdag.concept_nodes)
    for c in sdag.concept_nodes:
        nodes.update(hypernyms(sdag, c, rule.top))
    return tuple(sorted({lemma for v in nodes for lemma in lemmas(sdag, v)}))


def draw(sdag: SDAG, store_spec: StoreSpec, rule: CaptionRule | None = None) -> CaptionedSample:
    """The captioned sample of `rule` (default: the fixed `CaptionRule()`): expert-pool images, rule captions.

    A concept with fewer pool images than `rule.per_concept` gives all it has (an emoji concept of the open world
    has one or two drawings in the pool and their views); one with none is left out, as a web model may never
    have seen it. A concept with no hypernym below the cut is captioned with its own lemma instead."""
    rule = CaptionRule() if rule is None else rule
    _check_rule(rule, sdag)
    pool = store_lib.expert_pool(store_spec)
    words = vocabulary(sdag, rule)
    word = {w: i for i, w in enumerate(words)}
    concepts = sdag.concept_nodes
    above = {node: hypernyms(sdag, node, rule.top) for node in concepts}  # once per concept, not per image
    rng = np.random.default_rng(rule.seed)
    indices, shown, kinds, captions = [], [], [], []
    for c, node in enumerate(concepts):
        items = np.flatnonzero(pool.labels == c)
        for index in np.sort(rng.choice(items, min(rule.per_concept, len(items)), replace=False)):
            kind = int(rng.choice(len(KINDS), p=[rule.own, rule.hypernym, rule.other]))
            if kind == 0 or (kind == 1 and not above[node]):
                source = node
            elif kind == 1:
                source = above[node][int(rng.integers(len(above[node])))]
            else:
                others = [v for v in concepts if v != node]
                source = others[int(rng.integers(len(others)))]
            options = lemmas(sdag, source)
            indices.append(index)
            shown.append(c)
            kinds.append(kind)
            captions.append(word[options[int(rng.integers(len(options)))]])
    indices = np.asarray(indices)
    return CaptionedSample(
        indices,
        pool.images[indices],
        np.asarray(shown, np.int32),
        np.asarray(kinds, np.int32),
        np.asarray(captions, np.int32),
        words,
    )
