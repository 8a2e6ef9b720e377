"""The open world's task suites as rules (issue 28 item 6), fixed before any open-world result was measured.

A suite is drawn by `experiments.world_suites.draw` from its rule and the SDAG,
over the concepts its split has images of (the development split for the
development suite, the test split for the reported one): 60 tasks of 2 to 20
classes, written as users type them (one of a node's first `LEMMAS` WordNet lemmas,
the common names, leaving out Latin ones; a third in the plural):

- `within`: tasks inside one domain (animals, fruit, vehicles, digits, clothing),
  `within_per_domain` of each;
- `depth`: classes at several WordNet depths under one node (fruit beside
  vegetable beside bacon; boat beside van), no class inside another;
- `mixed`: classes from two to four domains.

The two suites differ only in their seed. Nothing here was chosen by a result.
"""

from __future__ import annotations

import dataclasses

__all__ = ["DEVELOPMENT", "REPORTED", "SuiteRule", "get_rule"]


@dataclasses.dataclass(frozen=True)
class SuiteRule:
    within: tuple[str, ...] = ("animals", "fruit", "vehicles", "digits", "clothing")  # `open_world_hub.DOMAINS`
    within_per_domain: int = 4
    depth_under: tuple[str, ...] = ("food", "vehicles", "animals")  # domains whose inner nodes are classes
    depth_tasks: int = 10
    depth_classes: tuple[int, int] = (2, 6)  # inclusive: a node class is broad, so few of them make a task
    mixed_tasks: int = 30
    mixed_domains: tuple[int, int] = (2, 4)  # inclusive
    classes: tuple[int, int] = (2, 20)  # inclusive, within and mixed tasks
    plural_share: float = 1 / 3
    lemmas: int = 2  # a name is one of a node's first this many lemmas (WordNet puts the common ones first)
    seed: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


REPORTED = SuiteRule(seed=0)
DEVELOPMENT = SuiteRule(seed=1)


def get_rule(split: str) -> SuiteRule:
    """The rule of the suite scored on `split`: 'test' (reported) or 'dev' (design choices)."""
    rules = {"test": REPORTED, "dev": DEVELOPMENT}
    if split not in rules:
        raise ValueError(f"unknown split {split!r}; use 'test' (reported results) or 'dev' (design choices)")
    return rules[split]
