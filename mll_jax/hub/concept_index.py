"""The concept index (method.md §2.1): what each expert head fires on, as rows by SDAG concept.

Selection reads only the rows of a task's concepts, so finding candidates costs
what the task's concepts hold, not what the hub holds.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5  # r(j, c) >= THRESHOLD: head j fires on concept c (labeling's rule, method.md §3.1; fixed, not tuned)


def rows(record: dict[str, np.ndarray], concept_nodes: list[str]) -> list[tuple[str, int, float, float]]:
    """(concept, head, response, hits) for every (head, concept) a label record says the head fires on."""
    if "problem" in record:
        return []
    response, confusion = record["response"], record["confusion"]  # [H, concepts], [concepts, H]
    heads, concepts = np.nonzero(response >= THRESHOLD)
    return [(concept_nodes[c], int(j), float(response[j, c]), float(confusion[c, j])) for j, c in zip(heads, concepts)]
