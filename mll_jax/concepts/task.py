"""A target task: class names resolved to SDAG nodes and the concepts each class means (method.md §3.2).

When a task names a concept and one of its descendants ("shirt" and "t-shirt"), the
ancestor class means its subtree minus the other classes' subtrees: here, shirts
that are not T-shirts.
"""

from __future__ import annotations

import dataclasses
import difflib
import zlib

import numpy as np

from mll_jax.concepts import matching
from mll_jax.concepts.sdag import SDAG, normalise

__all__ = ["TaskClass", "TaskError", "name_hash", "resolve", "targets"]


def name_hash(names) -> np.uint32:
    """A task's own number from its class names, folded into a seed: what is drawn for a task depends on the
    task, not on its position in a batch or suite, and differs between tasks."""
    return np.uint32(zlib.crc32("\x1f".join(names).encode()))


@dataclasses.dataclass(frozen=True)
class TaskClass:
    name: str
    node: str
    concepts: frozenset[str]
    match: matching.Match


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
    unknown = [m.name for m in matches if not m.covered]
    if unknown:
        vocabulary = list(sdag.lemma_index)
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(normalise(name), vocabulary, n=3, cutoff=0.6)
            hints.append(
                f"{name!r}" + (f" (did you mean {', '.join(c.replace('_', ' ') for c in close)}?)" if close else "")
            )
        raise TaskError(
            f"unknown class name(s) {', '.join(hints)}: no concept of the SDAG matches. "
            "`mll-jax sdag show <node>` lists what a node is called."
        )
    by_node: dict[str, str] = {}
    for m in matches:
        if m.node in by_node:
            raise TaskError(f"classes {by_node[m.node]!r} and {m.name!r} both mean {m.node}; merge them into one class")
        by_node[m.node] = m.name
    classes = []
    for m in matches:
        others = [sdag.concepts_under(o.node) for o in matches if o is not m]
        inside = [o for o in others if o < sdag.concepts_under(m.node)]
        concepts = sdag.concepts_under(m.node).difference(*inside)
        if not concepts:
            raise TaskError(f"class {m.name!r} ({m.node}) has nothing left once its sub-classes are taken out")
        classes.append(TaskClass(m.name, m.node, frozenset(concepts), m))
    for a in classes:
        for b in classes:
            if a is not b and a.concepts & b.concepts:
                raise TaskError(f"classes {a.name!r} and {b.name!r} overlap ({sorted(a.concepts & b.concepts)})")
    return classes


def targets(item_synsets: np.ndarray, classes: list[TaskClass]) -> np.ndarray:
    """Class index of each item given its concept synset, or -1 if it is in no class of the task."""
    y = np.full(len(item_synsets), -1, np.int32)
    for k, cls in enumerate(classes):
        y[np.isin(item_synsets, list(cls.concepts))] = k
    return y
