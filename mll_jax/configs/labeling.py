"""Labelling's settings (the firing rule itself is part of the method: `labeling.rule`)."""

from __future__ import annotations

__all__ = ["GROUP_SIZE"]

# Models of one signature run together in one engine program when labelled, in runs of this many, so a new model
# in a hub of thousands runs with at most this many others. A bound on memory and on the work a resumed run
# repeats, set by hand when the database arrived (not measured, and no split has a say in it).
GROUP_SIZE = 64
