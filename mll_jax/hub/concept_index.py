"""The concept index (method.md §2.1): what each expert head fires on, as rows by SDAG concept.

Selection reads only the rows of a task's concepts, so finding candidates costs
what the task's concepts hold, not what the hub holds. Which heads fire is
labelling's rule (`labeling.rule`); it reaches the hub as rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rows"]


def rows(
    response: np.ndarray, confusion: np.ndarray, concept_nodes: list[str], fires: np.ndarray
) -> list[tuple[str, int, float, float]]:
    """(concept, head, response, hits) for every head j and concept c where bool `fires` [H, concepts] holds, from a
    label record's response [H, concepts] and confusion [concepts, H]."""
    heads, concepts = np.nonzero(fires)
    return [(concept_nodes[c], int(j), float(response[j, c]), float(confusion[c, j])) for j, c in zip(heads, concepts)]
