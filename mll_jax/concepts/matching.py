"""Matching task class names to SDAG nodes (method.md §3.2).

A name is normalised (case, spaces/hyphens/underscores), then looked up:
  0. a node id as such ('sandal.n.01');
  1. among the SDAG's own lemmas (WordNet lemmas plus the dataset's class names),
     as typed or in base form (plurals: 'ankle boots' -> 'ankle boot');
  2. through WordNet with the same morphological normalisation ('sneakers' ->
     'sneaker'), keeping only senses present in the SDAG;
  3. a WordNet noun the SDAG lacks climbs at most HYPERNYM_STEPS hypernyms to a
     concept node ('slacks' -> trouser.n.01, 'blazer' -> coat.n.01); climbing to
     a broad node would be a guess ('car' reaches container.n.01);
  4. by meaning: the MiniLM embedding (`text.py`) of the name against each node's
     lemmas and gloss; the nearest node, if its cosine is at least
     EMBEDDING_THRESHOLD ('running shoes' -> gym_shoe.n.01, 'tee' -> jersey.n.03).
Among several senses in the SDAG the rule prefers a concept node (one with samples
of its own), then WordNet's sense order (most frequent first). In a task, the other
class names are context: when rules 1-3 give a name several candidate nodes (its
senses, and the concept nodes its other WordNet senses climb to), the one whose
lemmas and gloss are nearest in meaning to the name among its neighbours wins
('jumper' beside 'sandal' and 'dress' is a sweater). A name that matches nothing has
`node` None and its nearest nodes by meaning as `alternatives`: selection answers it
with the general model's text head for the name (method.md §3.2).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from mll_jax.concepts import text, wordnet
from mll_jax.concepts.sdag import SDAG, normalise
from mll_jax.configs.matching import CLOSE_NODES, EMBEDDING_THRESHOLD, HYPERNYM_STEPS, MAX_NAME_LENGTH

__all__ = ["Match", "check_name", "declared_node", "match", "match_one", "nearest_by_meaning"]

_SYNSET_NAME = re.compile(r"^[^\s.]+(\.[^\s.]+)*\.n\.\d{2}$")  # 'tench.n.01', 'st._bernard.n.01'


@dataclasses.dataclass(frozen=True)
class Match:
    name: str
    node: str | None
    confidence: float
    how: str  # 'node', 'lemma', 'wordnet', 'hypernym', 'embedding', 'none'
    alternatives: tuple[str, ...] = ()

    @property
    def covered(self) -> bool:
        return self.node is not None


def check_name(name: str) -> str:
    """The name stripped, or a ValueError saying what is wrong with it."""
    if not isinstance(name, str):
        raise TypeError(f"class names must be strings, got {type(name).__name__}: {name!r}")
    stripped = name.strip()
    if not stripped:
        raise ValueError("a class name is empty; give every class a name such as 'sandal'")
    if len(stripped) > MAX_NAME_LENGTH:
        raise ValueError(
            f"class name {stripped[:30]!r}... is {len(stripped)} characters; the limit is {MAX_NAME_LENGTH}"
        )
    if not any(ch.isalnum() for ch in stripped):
        raise ValueError(f"class name {stripped!r} has no letters or digits; name a concept such as 'sandal'")
    return stripped


@functools.lru_cache(maxsize=4096)
def _forms(key: str) -> tuple[str, ...]:
    """`key` and its base forms ('ankle_boots' -> 'ankle_boot'): the whole, then the last word."""
    wn = wordnet.wordnet()
    forms = [key, *wn.base_forms(key)]
    head, _, last = key.rpartition("_")
    if head:
        forms += [f"{head}_{base}" for base in wn.base_forms(last)]
    return tuple(dict.fromkeys(forms))


@functools.lru_cache(maxsize=4096)
def _wordnet_senses(key: str) -> tuple[str, ...]:
    wn = wordnet.wordnet()
    return tuple(dict.fromkeys(s.name() for form in _forms(key) for s in wn.synsets(form, pos="n")))


def _rank(sdag: SDAG, nodes: list[str]) -> list[str]:
    concept = sdag.graph.nodes(data="concept")
    return sorted(dict.fromkeys(nodes), key=lambda v: (concept[v] < 0, nodes.index(v)))


def match_one(sdag: SDAG, name: str, context: tuple[str, ...] = ()) -> Match:
    """The node `name` means; `context` (the task's other class names) settles between several senses."""
    name = check_name(name)
    if name in sdag.graph:
        return Match(name, name, 1.0, "node")
    found = _match_key(sdag, name, normalise(name))
    if not found.covered and "/" in name:  # dataset names such as 'T-shirt/top'
        for part in filter(str.strip, name.split("/")):
            if (found := _match_key(sdag, name, normalise(part))).covered:
                break
    if context and found.covered and found.how != "embedding":
        found = _in_context(sdag, found, normalise(name), tuple(c for c in context if c != name))
    return found


def declared_node(sdag: SDAG, name: str) -> str | None:
    """The node a model's declared head name means: a WordNet synset name ('sandal.n.01', as pretrained ImageNet
    heads declare theirs) exactly, the node itself or none; any other name by the rules above."""
    if _SYNSET_NAME.match(name):
        return name if name in sdag.graph else None
    return match_one(sdag, name).node


def _in_context(sdag: SDAG, found: Match, key: str, context: tuple[str, ...]) -> Match:
    """`found` with its node re-chosen by meaning in context, when the rules leave more than one sense."""
    senses = list(dict.fromkeys([found.node, *found.alternatives, *_climbed(sdag, key)]))
    if len(senses) < 2 or not text.available():
        return found
    query = f"{found.name}, as in: {', '.join(context)}"
    nodes, embeddings = sdag.node_embeddings()
    row = {v: i for i, v in enumerate(nodes)}
    cosine = embeddings[[row[v] for v in senses]] @ text.embedding(query)
    ranked = [senses[i] for i in np.argsort(-cosine, kind="stable")]
    return dataclasses.replace(found, node=ranked[0], alternatives=tuple(ranked[1:]), how=f"{found.how}+context")


def _climbed(sdag: SDAG, key: str) -> tuple[str, ...]:
    """The concept nodes each WordNet sense of `key` climbs to."""
    return tuple(m.node for m in (_climb(sdag, key, sense) for sense in _wordnet_senses(key)) if m)


def _match_key(sdag: SDAG, name: str, key: str) -> Match:
    index = sdag.lemma_index
    for form in _forms(key):
        if by_lemma := index.get(form, []):
            ranked = _rank(sdag, by_lemma)
            confidence = (1.0 if form == key else 0.9) / len(ranked)
            return Match(name, ranked[0], confidence, "lemma", tuple(ranked[1:]))
    in_sdag = [s for s in _wordnet_senses(key) if s in sdag.graph]
    if in_sdag:
        ranked = _rank(sdag, in_sdag)
        return Match(name, ranked[0], 0.9 / len(ranked), "wordnet", tuple(ranked[1:]))
    for sense in _wordnet_senses(key):  # first sense first
        if climbed := _climb(sdag, key, sense):
            return dataclasses.replace(climbed, name=name)
    return _by_meaning(sdag, name)


def _climb(sdag: SDAG, key: str, sense: str) -> Match | None:
    """The nearest concept-node ancestor (within HYPERNYM_STEPS) of one WordNet sense."""
    concept = sdag.graph.nodes(data="concept")
    frontier = [wordnet.wordnet().synset(sense)]
    for step in range(1, HYPERNYM_STEPS + 1):
        frontier = [h for s in frontier for h in s.hypernyms() + s.instance_hypernyms()]
        found = [h.name() for h in frontier if h.name() in sdag.graph and concept[h.name()] >= 0]
        if found:
            return Match(key, found[0], 0.8 / step, "hypernym", tuple(found[1:]))
    return None


def _by_meaning(sdag: SDAG, name: str) -> Match:
    if not text.available():
        return Match(name, None, 0.0, "none")
    nearest = nearest_by_meaning(sdag, name, CLOSE_NODES)
    (node, cosine), *others = nearest
    if cosine < EMBEDDING_THRESHOLD:  # the threshold decides which node, never whether the name is answered
        return Match(name, None, 0.0, "none", tuple(v for v, _ in nearest))
    close = tuple(v for v, c in others if c >= EMBEDDING_THRESHOLD)
    return Match(name, node, cosine, "embedding", close)


def nearest_by_meaning(sdag: SDAG, name: str, count: int = 4) -> list[tuple[str, float]]:
    """The `count` nodes nearest to `name` by embedding cosine, nearest first, whatever the threshold."""
    nodes, embeddings = sdag.node_embeddings()
    cosine = embeddings @ text.embedding(name)
    return [(nodes[i], float(cosine[i])) for i in np.argsort(-cosine)[:count]]


def match(sdag: SDAG, names: list[str]) -> list[Match]:
    """Each name's node, with the task's other names as context."""
    return [match_one(sdag, n, tuple(names[:i] + names[i + 1 :])) for i, n in enumerate(names)]
