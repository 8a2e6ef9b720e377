"""The semantic DAG: WordNet synsets above the store's concepts, with their samples (method.md §2).

Nodes are synset names (or custom concept ids); edges go hypernym -> hyponym. Node
attributes: `lemmas`, `gloss`, `depth`, `concept` (the store concept index, or -1
for an internal node). Samples (store indices) live beside the graph in arrays:
`own[v]` are the store items of concept v, `samples[v]` a capped, stratified union
over the concepts in v's subtree. Each node's text (lemmas and gloss) has a MiniLM
embedding, computed once and stored beside the graph (`sdag_text.npz`).

An SDAG does not change once built; what is derived from it (concept sets, the lemma
index, the node embeddings) is kept on it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from pathlib import Path

import networkx as nx
import numpy as np

from mll_jax import paths
from mll_jax.concepts import text, wordnet
from mll_jax.data.store import SampleStore

__all__ = ["ROOT", "SDAG", "build", "describe", "normalise"]

ROOT = "entity.n.01"
TEXTS_FILE = "sdag_text.npz"
log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class SDAG:
    graph: nx.DiGraph
    own: dict[str, np.ndarray]  # concept node -> its store indices
    samples: dict[str, np.ndarray]  # every node -> capped stratified store indices
    directory: Path | None = None  # where it is saved; the node text embeddings are kept beside it

    @functools.cached_property
    def concept_nodes(self) -> list[str]:
        """Nodes that carry samples of their own, in store concept order."""
        nodes = [v for v, c in self.graph.nodes(data="concept") if c >= 0]
        return sorted(nodes, key=lambda v: self.graph.nodes[v]["concept"])

    def concepts_under(self, node: str) -> frozenset[str]:
        """Concept nodes in the subtree of `node` (itself included)."""
        return self._concepts_under[node]

    @functools.cached_property
    def _concepts_under(self) -> dict[str, frozenset[str]]:
        concept = self.graph.nodes(data="concept")
        return {v: frozenset(u for u in nx.descendants(self.graph, v) | {v} if concept[u] >= 0) for v in self.graph}

    @functools.cached_property
    def lemma_index(self) -> dict[str, list[str]]:
        """Lower-case lemma (spaces as '_') -> nodes that carry it."""
        index: dict[str, list[str]] = {}
        for v, lemmas in self.graph.nodes(data="lemmas"):
            for lemma in lemmas:
                index.setdefault(normalise(lemma), []).append(v)
        return index

    def node_texts(self) -> tuple[list[str], list[str]]:
        """Every node (sorted) and its text: lemmas, then gloss."""
        nodes = sorted(self.graph)
        return nodes, [f"{', '.join(self.graph.nodes[v]['lemmas'])}: {self.graph.nodes[v]['gloss']}" for v in nodes]

    def node_embeddings(self) -> tuple[list[str], np.ndarray]:
        """Every node (sorted) and the MiniLM embedding of its text: read from beside the SDAG, or computed once
        and stored there (a read-only SDAG computes them again in each process)."""
        return self._node_embeddings

    @functools.cached_property
    def _node_embeddings(self) -> tuple[list[str], np.ndarray]:
        nodes, texts = self.node_texts()
        digest = hashlib.sha256(json.dumps([text.MODEL, texts]).encode()).hexdigest()[:16]
        path = (self.directory / TEXTS_FILE) if self.directory is not None else _text_cache(digest)
        embeddings = _stored_embeddings(path, digest)
        if embeddings is None:
            embeddings = text.embed(texts)
            _store_embeddings(path, digest, nodes, embeddings)
        return nodes, embeddings

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        _atomic_write_text(directory / "sdag.json", json.dumps(nx.node_link_data(self.graph, edges="edges")))
        arrays = {f"own/{k}": v for k, v in self.own.items()}
        arrays |= {f"samples/{k}": v for k, v in self.samples.items()}
        tmp = directory / "sdag_samples.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, directory / "sdag_samples.npz")

    @classmethod
    def load(cls, directory: Path) -> SDAG:
        path = directory / "sdag.json"
        if not path.is_file():
            raise FileNotFoundError(f"no SDAG at {directory}; build one with `mll-jax sdag build`")
        graph = nx.node_link_graph(json.loads(path.read_text()), edges="edges")
        with np.load(directory / "sdag_samples.npz") as arrays:
            own = {k.removeprefix("own/"): arrays[k] for k in arrays.files if k.startswith("own/")}
            samples = {k.removeprefix("samples/"): arrays[k] for k in arrays.files if k.startswith("samples/")}
        return cls(graph, own, samples, directory)


def normalise(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").replace("_", " ").split())


def _text_cache(digest: str) -> Path:
    return paths.cache_dir() / "text" / f"nodes-{digest}.npz"


def _stored_embeddings(path: Path, digest: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return stored["embeddings"] if str(stored["digest"]) == digest else None  # stale: the SDAG changed


def _store_embeddings(path: Path, digest: str, nodes: list[str], embeddings: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # processes embedding at once never share it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, digest=digest, nodes=np.array(nodes), embeddings=embeddings)
        os.replace(tmp, path)
    except OSError as error:  # a read-only hub still works; it computes them again next time
        log.warning("could not store node text embeddings at %s: %s", path, error)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def build(store: SampleStore, cap: int = 1000, seed: int = 0) -> SDAG:
    """The SDAG of `store`'s concepts and all their hypernyms up to the root."""
    wn = wordnet.wordnet()
    graph = nx.DiGraph()
    own = {}
    for index, (name, extra) in enumerate(zip(store.synsets, store.lemmas)):
        synset = wn.synset(name)
        for path in synset.hypernym_paths():
            nx.add_path(graph, [s.name() for s in path])
        own[name] = np.flatnonzero(store.concepts == index).astype(np.int32)
        graph.nodes[name]["concept"] = index
        graph.nodes[name]["extra_lemmas"] = list(extra)
    for v in graph.nodes:
        synset = wn.synset(v)
        attrs = graph.nodes[v]
        attrs.setdefault("concept", -1)
        lemmas = [lemma.replace("_", " ") for lemma in synset.lemma_names()]
        attrs["lemmas"] = lemmas + [x for x in attrs.pop("extra_lemmas", []) if x not in lemmas]
        attrs["gloss"] = synset.definition()
        attrs["depth"] = synset.min_depth()
    sdag = SDAG(graph, own, {})
    rng = np.random.default_rng(seed)
    sdag.samples = {v: _stratified(rng, [own[c] for c in sorted(sdag.concepts_under(v))], cap) for v in graph}
    return sdag


def _stratified(rng: np.random.Generator, groups: list[np.ndarray], cap: int) -> np.ndarray:
    """At most `cap` items, as evenly spread over `groups` as their sizes allow."""
    quota, remaining = {}, cap
    for i, group in sorted(enumerate(groups), key=lambda ig: len(ig[1])):
        left = len(groups) - len(quota)
        quota[i] = min(len(group), remaining // left)
        remaining -= quota[i]
    picked = [rng.choice(g, quota[i], replace=False) for i, g in enumerate(groups)]
    return np.sort(np.concatenate(picked)).astype(np.int32)


def describe(sdag: SDAG, node: str) -> str:
    """A human-readable summary of one node."""
    if node not in sdag.graph:
        raise KeyError(f"node {node!r} is not in the SDAG (it has {sdag.graph.number_of_nodes()} nodes)")
    attrs = sdag.graph.nodes[node]
    parents = sorted(sdag.graph.predecessors(node))
    children = sorted(sdag.graph.successors(node))
    concepts = sorted(sdag.concepts_under(node))
    lines = [
        f"{node}  (depth {attrs['depth']})",
        f"  lemmas:   {', '.join(attrs['lemmas'])}",
        f"  gloss:    {attrs['gloss']}",
        f"  parents:  {', '.join(parents) or '-'}",
        f"  children: {', '.join(children) or '-'}",
        f"  concepts: {', '.join(concepts) or '-'}",
        f"  samples:  {len(sdag.samples[node])} (own {len(sdag.own.get(node, ()))})",
    ]
    return "\n".join(lines)
