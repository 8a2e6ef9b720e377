"""How results are judged (method.md §4): the selection seeds a suite is run over, and when a difference counts."""

from __future__ import annotations

__all__ = ["NOISE", "SEEDS"]

SEEDS = (0, 1, 2, 3, 4)  # selection seeds of the demo (`--seeds` picks fewer or more)
NOISE = 2.0  # a difference is larger than the noise beyond this many standard errors (the project's rule)
