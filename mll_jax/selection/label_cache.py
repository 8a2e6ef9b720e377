"""The label cache: every labelled model's store probabilities side by side, and what each head fires on.

Candidate scores are gathered from it inside the compiled CHCO program: no inference
at selection time. Its widths are rounded up so hubs of similar size share programs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mll_jax.hub.hub import Hub
from mll_jax.labeling import labels as labeling


@dataclasses.dataclass(frozen=True)
class LabelCache:
    """Every labelled model's probabilities side by side, and what its heads fire on."""

    models: tuple[str, ...]
    probs: jax.Array  # [N_store, H] float32: every head, then zero columns up to a multiple of HEAD_PAD
    head_model: np.ndarray  # [H_total] index into `models`
    head_offset: np.ndarray  # [len(models) + 1]
    fired: np.ndarray  # [H_total, num_concepts] bool; all False for the general model
    general_heads: np.ndarray  # [num_concepts] global head of the general model per concept, or -1
    cost: np.ndarray  # [M] parameters relative to the largest model, zero-padded to a multiple of MODEL_PAD
    general: int  # index of the general model, or -1


HEAD_PAD, MODEL_PAD = 64, 8  # label cache widths are rounded up, so hubs of similar size share compiled programs


def label_cache(hub: Hub) -> LabelCache:
    """The hub's label cache (memoised by the hub, which drops it when a model or label record changes)."""
    return hub.memo.get("label cache", lambda: build(hub))


def build(hub: Hub) -> LabelCache:
    """Every usable model's label record, side by side."""
    ids = [i for i in hub.entries if not labeling.problem(hub, i)]
    records = [hub.labels(i) for i in ids]
    sizes = [r["probs"].shape[1] for r in records]
    offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    num_concepts = len(hub.sdag.concept_nodes)
    fired = np.zeros((offset[-1], num_concepts), bool)
    general_heads = np.full(num_concepts, -1, np.int32)
    column = {c: i for i, c in enumerate(hub.sdag.concept_nodes)}
    general = ids.index(hub.general_id) if hub.general_id in ids else -1
    for m, record in enumerate(records):
        if m == general:
            for j, node in enumerate(record["declared_nodes"]):
                if str(node) in column:
                    general_heads[column[str(node)]] = offset[m] + j
        else:
            fired[offset[m] : offset[m + 1]] = record["response"] >= labeling.THRESHOLD
    params = np.array([hub.entry(i)["params"] for i in ids], np.float32)
    probs = np.concatenate([r["probs"] for r in records], 1)
    return LabelCache(
        models=tuple(ids),
        probs=jnp.asarray(np.pad(probs, ((0, 0), (0, -probs.shape[1] % HEAD_PAD))), jnp.float32),
        head_model=np.repeat(np.arange(len(ids)), sizes),
        head_offset=offset,
        fired=fired,
        general_heads=general_heads,
        cost=np.pad(params / params.max(), (0, -len(params) % MODEL_PAD)),
        general=general,
    )
