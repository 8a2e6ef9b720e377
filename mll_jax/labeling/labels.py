"""Model labelling (method.md §3.1): what each head of each model really recognises.

Every model runs once on every store sample; its probabilities P [N, H] are kept
in fp16 (the label cache). For head j and concept c (a node with samples of its
own) the response is r(j, c) = mean of P[x, j] over the samples x of c.

Selectivity rule: head j is labelled with concept c iff r(j, c) >= THRESHOLD (0.5).
Since a model's heads share one softmax, at most one head per model can pass on a
concept: a head is labelled with the concepts on which it takes the majority of the
model's belief, and is low (< 0.5) on every other concept, siblings included. The
head's node label is the smallest set of SDAG nodes whose concepts are exactly its
labelled concepts (e.g. sandal + sneaker -> shoe.n.01).

A head often also takes the majority on concepts its model never saw (a footwear
model calls most bags "sandal"); that is what the head does, so it is part of the
label, and selection only uses a head for a class when it fires on no other class
of the task. Declared head names are matched to nodes too: a head that is selective
for no concept under its declared node is reported as mislabelled.
"""

from __future__ import annotations

import dataclasses
import logging

import networkx as nx
import numpy as np
from tqdm.auto import tqdm

from mll_jax import engine
from mll_jax.concepts import matching
from mll_jax.concepts.sdag import SDAG
from mll_jax.hub import concept_index
from mll_jax.hub.hub import Hub

log = logging.getLogger(__name__)

THRESHOLD = concept_index.THRESHOLD  # fixed with the rule (a head fires on most of the concept's samples), not tuned


def responses(probs: np.ndarray, concepts: np.ndarray, num_concepts: int) -> np.ndarray:
    """r [H, num_concepts]: mean probability of each head over each concept's samples."""
    onehot = np.eye(num_concepts, dtype=np.float32)[concepts]  # [N, K]
    counts = np.maximum(onehot.sum(0), 1)
    return (probs.astype(np.float32).T @ onehot) / counts


def confusion(probs: np.ndarray, concepts: np.ndarray, num_concepts: int) -> np.ndarray:
    """[num_concepts, H]: fraction of each concept's samples on which each head is the argmax."""
    hits = np.eye(probs.shape[1], dtype=np.float32)[probs.argmax(1)]
    onehot = np.eye(num_concepts, dtype=np.float32)[concepts]
    return (onehot.T @ hits) / np.maximum(onehot.sum(0), 1)[:, None]


def node_cover(sdag: SDAG, concepts: set[str] | frozenset[str]) -> list[str]:
    """Fewest, highest SDAG nodes whose concept sets together are exactly `concepts`."""
    fits = [v for v in sdag.graph if (under := sdag.concepts_under(v)) and under <= concepts]
    top = {v for v in fits if not any(sdag.concepts_under(v) < sdag.concepts_under(u) for u in fits)}
    # Of nodes with the same concepts (bag.n.04 and its lone ancestors) keep the most specific.
    top = {v for v in top if not any(u != v and nx.has_path(sdag.graph, v, u) for u in top)}
    # A concept whose node also covers other concepts (shirt.n.01 over T-shirts) stands for itself.
    return sorted(top | {c for c in concepts if not any(c in sdag.concepts_under(v) for v in top)})


def label_record(sdag: SDAG, store_concepts: np.ndarray, probs: np.ndarray, declared: list[str]) -> dict:
    num_concepts = len(sdag.concept_nodes)
    nodes = [matching.match_one(sdag, name).node or "" for name in declared]
    probs = probs.astype(np.float16)  # the label cache; everything below derives from it
    return {
        "probs": probs,
        "response": responses(probs, store_concepts, num_concepts),
        "confusion": confusion(probs, store_concepts, num_concepts),
        "declared_nodes": np.array(nodes, dtype=str),
    }


def problem_with(probs: np.ndarray) -> str:
    """Why a model's outputs cannot be trusted ('' if they can)."""
    if not np.isfinite(probs).all():
        return f"outputs NaN or Inf on {int((~np.isfinite(probs)).any(1).sum())} store samples"
    if probs.std(0).max() < 1e-6:
        return "outputs the same probabilities for every input"
    return ""


GROUP_SIZE = 64  # models run together in one engine program when labelled


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
        by_signature.setdefault(hub.registry.signature(model_id), []).append(model_id)
    out: dict[tuple[str, int], list[str]] = {}
    for signature, pending in by_signature.items():
        members = hub.registry.with_signature(signature)  # one read per signature
        position = {m: i for i, m in enumerate(members)}
        for model_id in pending:
            start = position[model_id] // GROUP_SIZE * GROUP_SIZE
            out.setdefault((signature, start), members[start : start + GROUP_SIZE])
    return list(out.values())


def compute(
    hub: Hub, group: list[str], batch_size: int = engine.BATCH_SIZE, dtype: str = "float32", progress: bool = True
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


def record(hub: Hub, model_id: str, result: np.ndarray | str) -> dict[str, np.ndarray]:
    """The label record of one model from `compute`'s result (a `problem` record if it has one)."""
    problem = result if isinstance(result, str) else problem_with(result)
    if problem:
        return {"problem": np.array(problem)}
    return label_record(hub.sdag, hub.store.concepts, result, hub.entry(model_id)["heads"])


def todo(hub: Hub, model_ids: list[str] | None = None, force: bool = False) -> list[str]:
    """The models (of `model_ids`, default all) without a valid label record, or all of them with `force`.

    For the whole hub, a model counts as labelled when the registry has its record's
    checksum and the file exists; `hub verify` checks every record's bytes.
    """
    if model_ids is None:
        if force:
            return list(hub.entries)
        unlabelled = set(hub.unlabelled())
        return [i for i in hub.entries if i in unlabelled or not (hub.path / "labels" / f"{i}.npz").is_file()]
    for model_id in model_ids:
        hub.entry(model_id)
    return [i for i in model_ids if force or not hub.labels_valid(i)]


def label(
    hub: Hub,
    model_ids: list[str] | None = None,
    force: bool = False,
    batch_size: int = engine.BATCH_SIZE,
    progress: bool = True,
    dtype: str = "float32",
) -> list[str]:
    """Label the models without a valid label record (or `model_ids`); returns those labelled.

    Models run on the engine group by group; each group's records are written
    atomically when it is done, so a killed run resumes with the groups it had not
    finished. A model that cannot be loaded or whose outputs are NaN/Inf or
    constant gets a record with a `problem`, which excludes it from selection.
    """
    pending = todo(hub, model_ids, force)
    total = len(model_ids or hub.entries)
    log.info("%d of %d models need labels: %s", len(pending), total, ", ".join(pending) or "none")
    for group in tqdm(groups(hub, pending), desc="labelling groups", disable=not (pending and progress)):
        results = compute(hub, group, batch_size, dtype, progress)
        for model_id in group:
            if model_id in pending:
                hub.save_labels(model_id, record(hub, model_id, results[model_id]))
    return pending


def problem(hub: Hub, model_id: str) -> str:
    """The reason `model_id` is excluded from selection ('' if it is usable)."""
    if model_id in hub.unlabelled() or not (hub.path / "labels" / f"{model_id}.npz").is_file():
        return "not labelled"
    return hub.excluded().get(model_id, "")


@dataclasses.dataclass(frozen=True)
class HeadLabel:
    model: str
    head: int
    declared: str
    declared_node: str
    concepts: tuple[str, ...]  # concepts the head is selective for
    nodes: tuple[str, ...]  # the smallest node cover of `concepts`
    response: float  # r on its best concept
    accuracy: float  # argmax hit rate on its labelled concepts
    mislabelled: bool


def head_labels(hub: Hub, model_id: str) -> list[HeadLabel]:
    record = hub.labels(model_id)
    if record is None:
        raise ValueError(f"model {model_id!r} is not labelled yet; run `mll-jax label`")
    if "problem" in record:
        raise ValueError(f"model {model_id!r} is excluded: {record['problem']}")
    sdag, heads = hub.sdag, hub.entry(model_id)["heads"]
    concept_nodes = sdag.concept_nodes
    out = []
    for j, name in enumerate(heads):
        r = record["response"][j]
        fired = tuple(concept_nodes[c] for c in np.flatnonzero(r >= THRESHOLD))
        declared_node = str(record["declared_nodes"][j])
        declared_concepts = sdag.concepts_under(declared_node) if declared_node else set()
        hits = [record["confusion"][concept_nodes.index(c), j] for c in fired]
        out.append(
            HeadLabel(
                model=model_id,
                head=j,
                declared=name,
                declared_node=declared_node,
                concepts=fired,
                nodes=tuple(node_cover(sdag, set(fired))),
                response=float(r.max()),
                accuracy=float(np.mean(hits)) if hits else 0.0,
                mislabelled=bool(fired) and not declared_concepts & set(fired),
            )
        )
    return out


def mislabel_report(hub: Hub) -> list[HeadLabel]:
    """Heads whose measured label disagrees with their declared name."""
    usable = [i for i in hub.ids("expert") if not problem(hub, i)]
    return [h for i in usable for h in head_labels(hub, i) if h.mislabelled]
