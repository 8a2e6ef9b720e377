"""Selection (method.md §3.2-3.3): task names to candidate heads, combined by CHCO on their label records.

`types` the results, `candidates` who may score a class (from the hub's concept index),
`problems` a task as padded arrays, `chco` the optimisation, `programs` its compiled
programs, `by_name` the classes no SDAG node matches (the general model's text heads),
`selecting` the `select` / `select_many` entry points. Settings:
`configs.selection` (`SelectionConfig`, `SolverConfig`).
"""

from mll_jax.selection import programs
from mll_jax.selection.selecting import brute_force, select, select_many, warmup
from mll_jax.selection.types import Candidate, Choice, Selection

__all__ = ["Candidate", "Choice", "Selection", "brute_force", "programs", "select", "select_many", "warmup"]
