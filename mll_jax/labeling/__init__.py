"""Labelling (method.md §3.1): each model run once on the sample store, its heads labelled with SDAG concepts.

`labels` labels a hub, `distributed` the same over several processes, `verify`
checks and repairs a hub's files.
"""

from mll_jax.labeling.labels import HeadLabel, head_labels, label, mislabel_report, problem

__all__ = ["HeadLabel", "head_labels", "label", "mislabel_report", "problem"]
