"""Candidates (method.md §3.2): per task class, the (model, heads) that fire on it and on no other class."""

from __future__ import annotations

import numpy as np

from mll_jax.concepts import task as task_lib
from mll_jax.hub.hub import Hub
from mll_jax.selection.label_cache import label_cache
from mll_jax.selection.types import Candidate


def class_of_concept(hub: Hub, classes) -> np.ndarray:
    column = {c: i for i, c in enumerate(hub.sdag.concept_nodes)}
    class_of = np.full(len(column), -1)
    for k, cls in enumerate(classes):
        class_of[[column[c] for c in cls.concepts]] = k
    return class_of


def candidates(hub: Hub, classes: list[task_lib.TaskClass], patch_every_class: bool = True) -> list[list[Candidate]]:
    """Per class: (expert, heads) that fire on it and on no other class of the task; then the general model
    (for every class, or with `patch_every_class` False only for a class no expert covers)."""
    cache = label_cache(hub)
    class_of = class_of_concept(hub, classes)
    K = len(classes)
    onehot = np.zeros((len(class_of), K), np.int32)
    onehot[class_of >= 0, class_of[class_of >= 0]] = 1
    on = (cache.fired.astype(np.int32) @ onehot) > 0  # [H_total, K]
    valid = on & (on.sum(1, keepdims=True) == 1)
    out: list[list[Candidate]] = []
    for k in range(K):
        heads = np.flatnonzero(valid[:, k])
        by_model = np.split(heads, np.searchsorted(heads, cache.head_offset[1:-1]))
        cands = [
            Candidate(cache.models[m], tuple(int(j - cache.head_offset[m]) for j in hs))
            for m, hs in enumerate(by_model)
            if len(hs)
        ]
        general = cache.general_heads[class_of == k]
        if (patch_every_class or not cands) and cache.general >= 0 and (general >= 0).all():
            g = cache.general
            cands.append(Candidate(cache.models[g], tuple(int(j - cache.head_offset[g]) for j in general)))
        out.append(cands)
    return out
