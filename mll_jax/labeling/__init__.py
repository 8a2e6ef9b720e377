"""Labelling (method.md §3.1): each model run once on the sample store, its heads labelled with SDAG concepts.

`rule` the rule, `labels` labelling a hub, `heads` what each head is labelled with
and the mislabel report, `distributed` labelling over several processes, `verify`
checking and repairing a hub's files.
"""

from mll_jax.labeling.heads import HeadLabel, declared_synsets, head_labels, mislabel_report
from mll_jax.labeling.labels import exclusion, label

__all__ = ["HeadLabel", "declared_synsets", "exclusion", "head_labels", "label", "mislabel_report"]
