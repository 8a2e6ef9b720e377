"""The oracle baseline's recipe: an expert trained directly on a task's classes (method.md §4)."""

from __future__ import annotations

ORACLE = {"arch": "mlp", "config": {"hidden": [256]}, "epochs": 3}
