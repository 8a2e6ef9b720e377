"""Selection (method.md §3.2-3.3): task names to candidate heads, combined by CHCO on the label cache.

`types` the results, `label_cache` every head's store probabilities, `candidates`
who may score a class, `problems` a task as padded arrays, `chco` the optimisation,
`programs` its compiled programs, `selecting` the `select` / `select_many` entry points.
"""

from mll_jax.selection.chco import Config
from mll_jax.selection.selecting import brute_force, select, select_many
from mll_jax.selection.types import Candidate, Choice, Selection

__all__ = ["Candidate", "Choice", "Config", "Selection", "brute_force", "select", "select_many"]
