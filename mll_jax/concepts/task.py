"""A target task: class names resolved to SDAG nodes and the concepts each class means (method.md §3.2).

When a task names a concept and one of its descendants ("shirt" and "t-shirt"), the
ancestor class means its subtree minus the other classes' subtrees: here, shirts
that are not T-shirts. A name that matches no node is kept as a class "by name"
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
    classes = []
    for m in matches:
        if not m.covered:
            classes.append(TaskClass(m.name, None, frozenset(), m))
            continue
        others = [sdag.concepts_under(o.node) for o in matches if o is not m and o.covered]
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
