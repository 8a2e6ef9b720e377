"""A task as padded arrays: its candidates' summed probabilities on the node samples of each half, its bucket.

`build_problem` makes a `Task` on the host, reading only the candidates' columns
of their label records at the task's node samples (`Hub.sample_probs`: no matrix of
every head in the hub); `with_scores` turns it into a `chco.Problem` inside the compiled program.
Models are numbered per task, so a task's arrays do not grow with the hub. Tasks
are padded to bucketed shapes (`bucket_shape`) and run in chunks of one size
(`chunks`), so one program serves every task of a bucket.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mll_jax.configs.selection import SelectionConfig
from mll_jax.hub import Hub
from mll_jax.selection import chco
from mll_jax.selection.types import Candidate

__all__ = [
    "Samples",
    "Task",
    "bucket_shape",
    "class_bucket",
    "build_problem",
    "chunks",
    "empty_problem",
    "model_cost",
    "node_samples",
    "pad_picks",
    "task_models",
    "with_scores",
]


class Samples(NamedTuple):
    """Node samples of one half, padded: candidates' summed head probabilities [N, K, C], class labels [N],
    weight [N] (0 pads)."""

    summed: np.ndarray
    labels: np.ndarray
    weight: np.ndarray


class Task(NamedTuple):
    """One task before scores: real candidates [K, C], their models [K, C] (numbered by `task_models`), each
    model's relative cost [K * C], the node samples of each half, the hash of its names, and which candidates are
    the hub's general model [K, C]."""

    cand_mask: np.ndarray
    cand_model: np.ndarray
    cost: np.ndarray
    fit: Samples
    val: Samples
    name_hash: np.ndarray = np.uint32(0)
    cand_general: np.ndarray | None = None


def task_models(cands: list[list[Candidate]]) -> list[str]:
    """The task's models in order of first appearance: `Task.cand_model` and CHCO's temperatures index them."""
    return list(dict.fromkeys(c.model for cs in cands for c in cs))


def _bucket(n: int, smallest: int = 2) -> int:
    return max(smallest, 1 << (n - 1).bit_length())


def node_samples(hub: Hub, classes, per_class: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(fit, val), each (store indices, class labels): up to `per_class // 2` items per class from that half
    of the store, stratified over the class's concepts.

    Items come from one fixed shuffle of the store per seed, so a class gets the same
    samples in every task.
    """
    column = {c: i for i, c in enumerate(hub.sdag.concept_nodes)}
    size = per_class // 2
    halves = []
    for items in hub.concept_items(seed):
        index, labels = [], []
        for k, cls in enumerate(classes):
            quota = -(-size // len(cls.concepts))
            chosen = [items.get(column[c], np.zeros(0, np.int64))[:quota] for c in sorted(cls.concepts)]
            index.append(np.concatenate(chosen)[:size])
            labels.append(np.full(len(index[-1]), k))
        halves.append((np.concatenate(index), np.concatenate(labels)))
    return tuple(halves)


def class_bucket(classes: int, config: SelectionConfig = SelectionConfig()) -> int:
    """The padded class count of a task of `classes` classes: the next of `config.class_buckets`, beyond them
    a power of two."""
    return next((b for b in config.class_buckets if b >= classes), _bucket(classes))


def bucket_shape(classes, cands, config: SelectionConfig = SelectionConfig()) -> tuple[int, int]:
    """Padded (K, C) of a task: K up to the next of `config.class_buckets` (beyond them a power of two);
    C to `config.max_candidates` (without a cap, to a multiple of 8). `cands` None: a task's candidates from
    `candidates()` not read yet, which never exceed the cap.

    Every bucket is a program to trace, compile and load, which costs more than the
    padding's compute for the tasks of a typical suite (`benchmarks/programs.py`).
    """
    K = class_bucket(len(classes), config)
    if cands is None:
        if config.max_candidates is None:
            raise ValueError("without a candidate cap a task's bucket needs its candidates")
        return K, config.max_candidates
    widest = max(len(cs) for cs in cands)
    if config.max_candidates is not None and widest <= config.max_candidates:
        return K, config.max_candidates
    return K, -(-widest // 8) * 8


def chunks(tasks: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of each compiled call over `tasks` tasks: `size` at a time; the last call's
    program is the same, padded with copies."""
    return [(start, min(start + size, tasks)) for start in range(0, tasks, size)]


def pad_picks(picks: np.ndarray) -> np.ndarray:
    """Rows of `picks` [P, K] repeated up to a power of two, so brute-force searches of similar size share programs."""
    return np.concatenate([picks, np.repeat(picks[:1], _bucket(len(picks)) - len(picks), 0)])


def model_cost(hub: Hub, model_id: str, cost: str = SelectionConfig.cost) -> float:
    """What CHCO charges `model_id` for (`SelectionConfig.cost`): its parameters over the hub's largest model's, or
    its forward pass's GFLOP per image (a head over a shared backbone: the backbone's too, what it costs alone)."""
    e = hub.entry(model_id)
    if cost == "params":
        return e.params / hub.largest_params()
    if cost != "flops":
        raise ValueError(f"cost must be 'params' or 'flops', got {cost!r}")
    from mll_jax import nets  # here, not above: the architectures bring Flax, which a selection by parameters
    # never needs (importing it was a third of a new process's first `select`, benchmarks/first_queries.py)

    if e.backbone is None:
        return nets.forward_flops(e.arch, e.config, len(e.heads), e.input_spec["shape"]) / 1e9
    b = hub.backbones[e.backbone]
    features = nets.forward_flops(b.arch, b.config, b.num_heads, b.input_spec["shape"], features=True)
    return (features + nets.forward_flops(e.arch, e.config, len(e.heads), (b.features,))) / 1e9


def build_problem(
    hub: Hub,
    classes,
    cands,
    per_class: int = SelectionConfig.samples_per_class,
    seed: int = 0,
    shape=None,
    cost: str = SelectionConfig.cost,
) -> Task:
    """One task's padded arrays (candidates' summed probabilities on both halves' node samples, masks);
    `shape` = (K, C); `cost` what each model is charged for (`model_cost`)."""
    K, C = shape or bucket_shape(classes, cands)
    models = task_models(cands)
    cand_mask = np.zeros((K, C), bool)
    cand_model = np.zeros((K, C), np.int32)
    cand_general = np.zeros((K, C), bool)
    for k, cs in enumerate(cands):
        for c, cand in enumerate(cs):
            cand_mask[k, c] = True
            cand_model[k, c] = models.index(cand.model)
            cand_general[k, c] = cand.model == hub.general_id
    costs = np.zeros(K * C, np.float32)  # a task uses at most K * C models
    costs[: len(models)] = [model_cost(hub, m, cost) for m in models]
    _, position = hub.sample_rows(per_class // 2, seed)
    halves = []
    for index, labels in node_samples(hub, classes, per_class, seed):
        pad = K * (per_class // 2) - len(index)
        rows = position[np.pad(index, (0, pad))]
        summed = np.zeros((len(rows), K, C), np.float32)  # padded candidates sum no heads
        for k, cs in enumerate(cands):
            for c, cand in enumerate(cs):
                columns = hub.sample_probs(cand.model, per_class // 2, seed)[rows][:, list(cand.heads)]
                summed[:, k, c] = columns.astype(np.float32).sum(1)
        halves.append(
            Samples(
                summed=summed,
                labels=np.pad(labels, (0, pad)).astype(np.int32),
                weight=np.pad(np.ones(len(labels), np.float32), (0, pad)),
            )
        )
    return Task(cand_mask, cand_model, costs, *halves, cand_general=cand_general)


def empty_problem(K: int, C: int, per_class: int = SelectionConfig.samples_per_class) -> Task:
    """A task of bucket (K, C) with one candidate per class and no data: the shapes of a program, for warm-up."""
    n = K * (per_class // 2)
    half = Samples(np.zeros((n, K, C), np.float32), np.zeros(n, np.int32), np.zeros(n, np.float32))
    mask = np.zeros((K, C), bool)
    mask[:, 0] = True
    return Task(
        mask, np.zeros((K, C), np.int32), np.zeros(K * C, np.float32), half, half, np.uint32(0), np.zeros((K, C), bool)
    )


def with_scores(task: Task) -> chco.Problem:
    """The CHCO problem of one task (traceable)."""

    def half(part: Samples) -> chco.Half:
        return chco.Half(chco.candidate_scores(part.summed), part.labels, part.weight)

    return chco.Problem(half(task.fit), half(task.val), task.cand_mask, task.cand_model, task.cost, task.cand_general)
