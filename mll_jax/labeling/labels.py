"""Model labelling (method.md §3.1): every model runs once on every store sample, its heads labelled by `rule`.

A model's store probabilities P [N, H] are kept in fp16 (the label cache) in its
label record, with the responses and confusion the rule derives from them and the
nodes its declared head names match; the concept index rows the rule gives go to
the hub with the record, in one transaction.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm.auto import tqdm

from mll_jax import engine
from mll_jax.configs.engine import BATCH_SIZE
from mll_jax.configs.labeling import GROUP_SIZE
from mll_jax.hub import Hub
from mll_jax.labeling import rule

__all__ = ["compute", "exclusion", "groups", "label", "save", "todo"]

log = logging.getLogger(__name__)


def groups(hub: Hub, model_ids: list[str]) -> list[list[str]]:
    """The engine groups that hold any of `model_ids`: models of one signature, in the order they were
    added, cut into runs of GROUP_SIZE.

    A model is always run with the same group, so its labels do not depend on which
    other models are labelled at the same time: resumed and multi-process runs give
    the same bytes as one uninterrupted run. Bounded groups keep labelling a new
    model as cheap in a hub of thousands as in a small one.
    """
    by_signature: dict[str, list[str]] = {}
    for model_id in model_ids:
        by_signature.setdefault(hub.signature(model_id), []).append(model_id)
    out: dict[tuple[str, int], list[str]] = {}
    for signature, pending in by_signature.items():
        members = hub.with_signature(signature)  # one read per signature
        position = {m: i for i, m in enumerate(members)}
        for model_id in pending:
            start = position[model_id] // GROUP_SIZE * GROUP_SIZE
            out.setdefault((signature, start), members[start : start + GROUP_SIZE])
    return list(out.values())


def compute(
    hub: Hub, group: list[str], batch_size: int = BATCH_SIZE, dtype: str = "float32", progress: bool = True
) -> dict:
    """Store-sample probabilities [N, H] of each model of `group`, or why it has none (a string)."""
    out, members, backbones = {}, [], {}
    for model_id in group:
        try:
            members.append(engine.hub_member(hub, model_id, backbones))
        except (ValueError, FileNotFoundError, KeyError) as error:
            out[model_id] = f"checkpoint does not load: {error}"
    if members:
        runner = engine.Engine(members, backbones, batch_size=batch_size, dtype=dtype)
        desc = f"labelling {', '.join(m.id for m in members)}" if progress else None
        out |= runner.probabilities(hub.store.images, progress=desc)
    return out


def save(hub: Hub, model_id: str, result: np.ndarray | str) -> None:
    """Store the label record of one model from `compute`'s result: its probabilities, or why it has none (then
    the record only says why the model is excluded)."""
    excluded = result if isinstance(result, str) else rule.untrusted(result)
    if excluded:
        hub.save_labels(model_id, {rule.EXCLUDED: np.array(excluded)}, [], excluded)
        return
    entry = hub.entry(model_id)
    record = rule.record(hub.sdag, hub.store.concepts, result, list(entry.heads), hub.label_rule)
    rows = rule.index_rows(record, hub.sdag.concept_nodes) if entry.role == "expert" else []
    hub.save_labels(model_id, record, rows)


def todo(hub: Hub, model_ids: list[str] | None = None, force: bool = False) -> list[str]:
    """The models (of `model_ids`, default all) without a valid label record, or all of them with `force`.

    For the whole hub, a model counts as labelled when the database has its record's
    checksum and the file exists; `hub verify` checks every record's bytes.
    """
    if model_ids is None:
        if force:
            return list(hub.entries)
        unlabelled = set(hub.unlabelled())
        return [i for i in hub.entries if i in unlabelled or not hub.has_record(i)]
    for model_id in model_ids:
        hub.entry(model_id)
    return [i for i in model_ids if force or not hub.labels_valid(i)]


def label(
    hub: Hub,
    model_ids: list[str] | None = None,
    force: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
    dtype: str = "float32",
) -> list[str]:
    """Label the models without a valid label record (or `model_ids`); returns those labelled.

    Models run on the engine group by group; each group's records are written
    atomically when it is done, so a killed run resumes with the groups it had not
    finished. A model that cannot be loaded or whose outputs are NaN/Inf or
    constant gets a record that excludes it from selection, saying why.
    """
    pending = todo(hub, model_ids, force)
    total = len(model_ids or hub.entries)
    log.info("%d of %d models need labels: %s", len(pending), total, ", ".join(pending) or "none")
    for group in tqdm(groups(hub, pending), desc="labelling groups", disable=not (pending and progress)):
        results = compute(hub, group, batch_size, dtype, progress)
        for model_id in group:
            if model_id in pending:
                save(hub, model_id, results[model_id])
    return pending


def exclusion(hub: Hub, model_id: str) -> str:
    """Why `model_id` is excluded from selection ('' if it is usable)."""
    if model_id in hub.unlabelled() or not hub.has_record(model_id):
        return "not labelled"
    return hub.excluded().get(model_id, "")
