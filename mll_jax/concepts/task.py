"""A target task: class names resolved to SDAG nodes and the concepts each class means (method.md §3.2).

When a task names a concept and one of its descendants ("shirt" and "t-shirt"), the
ancestor class means its subtree minus the other classes' subtrees: here, shirts
that are not T-shirts. Two classes whose nodes would share concepts are a clash of
senses: the one whose node is broader than a concept takes its next sense that no
other class means ("dress" beside garments first means apparel, which in the open
world's store holds only jeans; it then means dress.n.01), and the task is refused
only when no such sense is left. A name that matches no node is kept as a class "by name"
(`node` None, no concepts): selection answers it with the general model's text
head for the name (method.md §3.2).
"""

from __future__ import annotations

import dataclasses
import difflib
import zlib

import numpy as np

from mll_jax.concepts import matching
from mll_jax.concepts.sdag import SDAG, normalise

__all__ = ["TaskClass", "TaskError", "name_hash", "resolve", "targets", "unmatched_error"]


def name_hash(names) -> np.uint32:
    """A task's own number from its class names, folded into a seed: what is drawn for a task depends on the
    task, not on its position in a batch or suite, and differs between tasks."""
    return np.uint32(zlib.crc32("\x1f".join(names).encode()))


@dataclasses.dataclass(frozen=True)
class TaskClass:
    name: str
    node: str | None  # None: no SDAG node matches the name
    concepts: frozenset[str]
    match: matching.Match

    @property
    def by_name(self) -> bool:
        """Whether only a model that scores images against text can answer the class (no node, no samples)."""
        return self.node is None


class TaskError(ValueError):
    """The task cannot be solved as given; the message says why and how to fix it."""


def resolve(sdag: SDAG, names: list[str] | tuple[str, ...]) -> list[TaskClass]:
    if isinstance(names, str):
        raise TaskError(f"give the classes as a list of names, not one string: [{names!r}, ...]")
    names = [matching.check_name(n) for n in names]
    if len(names) < 2:
        raise TaskError(f"a task needs at least 2 classes, got {len(names)}: {names}")
    seen: dict[str, str] = {}
    for n in names:
        if normalise(n) in seen:
            raise TaskError(f"duplicate class name {n!r} (same as {seen[normalise(n)]!r}); name each class once")
        seen[normalise(n)] = n
    matches = matching.match(sdag, names)
    by_node: dict[str, str] = {}
    for m in (m for m in matches if m.covered):
        if m.node in by_node:
            raise TaskError(f"classes {by_node[m.node]!r} and {m.name!r} both mean {m.node}; merge them into one class")
        by_node[m.node] = m.name
    while True:
        classes, clash = _classes(sdag, matches)
        if clash is None:
            return classes
        error, involved = clash
        matches = _next_sense(sdag, matches, involved)
        if matches is None:
            raise error


def _classes(sdag: SDAG, matches: list[matching.Match]) -> tuple[list[TaskClass], tuple[TaskError, list[int]] | None]:
    """The classes `matches` mean, or the error that stops them and the classes it names."""
    classes = []
    for m in matches:
        if not m.covered:
            classes.append(TaskClass(m.name, None, frozenset(), m))
            continue
        others = [sdag.concepts_under(o.node) for o in matches if o is not m and o.covered]
        inside = [o for o in others if o < sdag.concepts_under(m.node)]
        concepts = sdag.concepts_under(m.node).difference(*inside)
        if not concepts:
            error = TaskError(f"class {m.name!r} ({m.node}) has nothing left once its sub-classes are taken out")
            return classes, (error, [])
        classes.append(TaskClass(m.name, m.node, frozenset(concepts), m))
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            if i != j and a.concepts & b.concepts:
                error = TaskError(f"classes {a.name!r} and {b.name!r} overlap ({sorted(a.concepts & b.concepts)})")
                return classes, (error, [i, j])
    return classes, None


def _next_sense(sdag: SDAG, matches: list[matching.Match], involved: list[int]) -> list[matching.Match] | None:
    """`matches` with one of the `involved` classes moved to its next sense (one no other class means), or None if
    none can move. Two classes that overlap are a clash of senses the names did not ask for ("dress" beside
    garments means apparel, which in a store of clothing may hold only jeans). Only a class whose node is broader
    than a concept moves, the least confident first: a name that means a concept exactly, or a node named by its
    id, keeps it."""
    concept = sdag.graph.nodes(data="concept")
    taken = {m.node for m in matches}
    movable = [i for i in involved if matches[i].how != "node" and concept[matches[i].node] < 0]
    for i in sorted(movable, key=lambda i: matches[i].confidence):
        m = matches[i]
        free = [v for v in m.alternatives if v not in taken]
        if free:
            rest = tuple(v for v in m.alternatives if v != free[0])
            moved = dataclasses.replace(m, node=free[0], alternatives=rest, how=f"{m.how}+other sense")
            return [moved if k == i else o for k, o in enumerate(matches)]
    return None


def unmatched_error(sdag: SDAG, classes: list[TaskClass], why: str) -> TaskError:
    """The error for names no SDAG node matches, when `why` no model can answer them by name."""
    vocabulary = list(sdag.lemma_index)
    hints = []
    for cls in (c for c in classes if c.by_name):
        close = difflib.get_close_matches(normalise(cls.name), vocabulary, n=3, cutoff=0.6)
        hints.append(
            f"{cls.name!r}" + (f" (did you mean {', '.join(c.replace('_', ' ') for c in close)}?)" if close else "")
        )
    return TaskError(
        f"unknown class name(s) {', '.join(hints)}: no concept of the SDAG matches, and {why}. "
        "`mll-jax sdag show <node>` lists what a node is called."
    )


def targets(item_synsets: np.ndarray, classes: list[TaskClass]) -> np.ndarray:
    """Class index of each item given its concept synset, or -1 if it is in no class of the task."""
    y = np.full(len(item_synsets), -1, np.int32)
    for k, cls in enumerate(classes):
        y[np.isin(item_synsets, list(cls.concepts))] = k
    return y
