"""Selection (method.md §3.2-3.3): names -> classes -> candidates -> CHCO on their label records -> `Selection`.

`select(hub, names)` solves one task, `select_many(hub, tasks)` many at once. The
general model is the only candidate for a class no expert covers ("uncovered"); by
default it is a candidate for every other class too (a text-aligned patch is often
as good as an expert, and CHCO picks by validation accuracy), and
`SelectionConfig(patch_every_class=False)` keeps it to uncovered classes, as the paper does.
A class whose name matches no SDAG node is left out of CHCO and answered by the general
model's head for its name (`by_name.py`, method.md §3.5); `max_models` bounds CHCO's models.

Batching: tasks are padded to bucketed shapes, so one compiled program serves a
bucket; a task reads only its candidates' label-record columns at its node samples
(no inference, and nothing that grows with the hub). A chunk's tasks are split over every local
device (a 'data' mesh); each task's random key comes from the seed and its names,
so the answer does not depend on the batch or the number of devices.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import jax
import numpy as np
from tqdm.auto import tqdm

from mll_jax.concepts import task as task_lib
from mll_jax.concepts import text
from mll_jax.configs.selection import WARMUP_CLASSES, SelectionConfig
from mll_jax.engine import sharding
from mll_jax.hub import Hub
from mll_jax.selection import by_name, chco, programs
from mll_jax.selection.candidates import candidates
from mll_jax.selection.problems import (
    bucket_shape,
    build_problem,
    chunks,
    class_bucket,
    empty_problem,
    pad_picks,
    task_models,
    with_scores,
)
from mll_jax.selection.types import Choice, Selection

__all__ = ["brute_force", "fixed_selection", "select", "select_many", "warmup"]

log = logging.getLogger(__name__)


def _default_chunk() -> int:
    """Tasks per device per call of the compiled program (a short chunk is padded, so one size is one
    program, and every device runs the same program whatever their number).
    On CPU a task's optimisation is compute-bound: 4 at a time is fastest per task (12 ms, against
    14 ms at 16 and 21 ms one by one, 3-class tasks on the demo hub); accelerators want wide batches."""
    return 4 if jax.default_backend() == "cpu" else 256


def _chunk_sizes(chunk: int | None, devices: int) -> tuple[int, ...]:
    """The chunk sizes a call may use: `chunk` tasks per device if given; else one per device for a bucket that
    has no more tasks than devices (a lone query: padding it to 4 on CPU took 58 ms against 27 ms alone for a
    3-class task, 0.72 s against 0.32 s for a 10-class one, development tasks on the demo hub), and the default
    for the rest."""
    return (chunk * devices,) if chunk else (devices, _default_chunk() * devices)


def select(
    hub: Hub, names: list[str] | tuple[str, ...], config: SelectionConfig | None = None, seed: int = 0
) -> Selection:
    """Choose heads for one task, given as its class names; `config` None: the hub's (`Hub.selection_config`)."""
    if not isinstance(names, str) and len(names) > 0 and not isinstance(names[0], str):
        raise task_lib.TaskError("select takes one task's class names; for a list of tasks use select_many")
    return _solve(hub, [names], config or hub.selection_config, seed)[0]


def select_many(
    hub: Hub,
    tasks: list[list[str]],
    config: SelectionConfig | None = None,
    seed: int = 0,
    chunk: int | None = None,
    progress: bool = False,
) -> list[Selection]:
    """Choose heads for many tasks at once (one compiled program per shape bucket); Selections in task order.
    `config` None: the hub's (`Hub.selection_config`).

    `chunk`: tasks per device per compiled call (default: 4 on CPU, 256 on accelerators; 1 for a task alone
    in its class bucket)."""
    if isinstance(tasks, str) or any(isinstance(t, str) for t in tasks):
        raise task_lib.TaskError("select_many takes a list of tasks, each a list of class names; for one use select")
    return _solve(hub, [list(t) for t in tasks], config or hub.selection_config, seed, chunk, progress)


def _solve(
    hub: Hub, tasks: list, config: SelectionConfig, seed: int, chunk: int | None = None, progress: bool = False
) -> list[Selection]:
    mesh = sharding.mesh()  # tasks are split over every local device
    sizes = _chunk_sizes(chunk, mesh.shape["data"])
    max_models = config.solver.max_models
    if len(tasks) == 1 and config.max_candidates is not None and not programs.count(programs.solve_chunk):
        # a new process's first query: its program loads while the names are matched
        empty = _empty_chunk(class_bucket(len(tasks[0]), config), sizes[0], config, mesh)
        programs.prefetch(programs.solve_chunk, empty, seed, config=config.solver)
    missing = hub.unlabelled()
    if missing:
        raise ValueError(f"models {missing} are not labelled; run `mll-jax label` first")
    resolved = [task_lib.resolve(hub.sdag, t) for t in tasks]
    texts = [by_name.text_model(hub, classes) if any(c.by_name for c in classes) else None for classes in resolved]
    matched = [[c for c in classes if not c.by_name] for classes in resolved]  # CHCO's classes (§3.5)
    solved = [t for t in range(len(tasks)) if len(matched[t]) >= 2]
    cands: list = [None] * len(tasks)

    def task_candidates(t: int) -> list:
        if cands[t] is None:
            cands[t] = candidates(hub, matched[t], config)
            empty = [cls.name for cls, c in zip(matched[t], cands[t]) if not c]
            if empty:
                raise task_lib.TaskError(f"task {t}: no expert or general model can score {empty}; add a general model")
        return cands[t]

    capped = config.max_candidates is not None  # a capped task's bucket needs no candidates: its chunk reads them
    buckets: dict[tuple[int, int], list[int]] = {}
    for t in solved:
        buckets.setdefault(bucket_shape(matched[t], None if capped else task_candidates(t), config), []).append(t)
    results: list[Selection | None] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc="selecting", disable=not progress)
    for t in set(range(len(tasks))) - set(solved):  # no CHCO: the general model answers the task by text alone
        results[t] = _with_names(resolved[t], None, texts[t])
        bar.update(1)

    def finish(part: list[int], dispatched) -> None:
        out = jax.device_get(dispatched)
        for i, t in enumerate(part):
            result = jax.tree.map(lambda x, i=i: x[i], out)
            made = _make_selection(hub, matched[t], cands[t], result, config.solver.combination)
            results[t] = _with_names(resolved[t], made, texts[t])
            if max_models is not None and len(results[t].expert_models) > max_models:
                raise task_lib.TaskError(
                    f"task {tasks[t]}: no selection of at most {max_models} model(s) scores every class; "
                    f"the smallest found uses {len(results[t].models)}"
                )
        bar.update(len(part))

    running = None  # the chunk the device is solving while the next one's candidates and arrays are read
    for bucket, members in buckets.items():
        log.info("bucket K=%d C=%d: %d task(s)", *bucket, len(members))
        size = sizes[0] if len(members) <= sizes[0] else sizes[-1]
        for start, stop in chunks(len(members), size):
            part = members[start:stop]
            problems = [
                build_problem(
                    hub, matched[t], task_candidates(t), config.samples_per_class, seed, bucket, config.cost
                )._replace(name_hash=task_lib.name_hash(tasks[t]))
                for t in part
            ]
            problems += [problems[0]] * (size - len(part))  # pad to the chunk with copies
            stacked = sharding.shard_rows(jax.tree.map(lambda *rows: np.stack(rows), *problems), mesh)
            dispatched = programs.compiled_call(programs.solve_chunk, stacked, seed, config=config.solver)
            if running is not None:
                finish(*running)
            running = part, dispatched
    if running is not None:
        finish(*running)
    bar.close()
    return results


def warmup(config: SelectionConfig = SelectionConfig(), chunk: int | None = None, progress: bool = False) -> int:
    """Prepare the programs of the class bucket of every task of 2 to `WARMUP_CLASSES` classes (at
    `config.max_candidates` candidates), and the text encoder's for names, so that a new process's first
    selection loads them instead of tracing and compiling; returns how many selection programs."""
    if config.max_candidates is None:
        raise ValueError("warmup prepares the buckets of a candidate cap; set SelectionConfig.max_candidates")
    mesh = sharding.mesh()
    buckets = sorted({class_bucket(k, config) for k in range(2, WARMUP_CLASSES + 1)})
    shapes = [(K, size) for K in buckets for size in _chunk_sizes(chunk, mesh.shape["data"])]
    for K, size in tqdm(shapes, desc="preparing selection programs", disable=not progress):
        stacked = _empty_chunk(K, size, config, mesh)
        jax.block_until_ready(programs.compiled_call(programs.solve_chunk, stacked, 0, config=config.solver))
    if text.available():
        text.prepare()
    return len(shapes)


def _empty_chunk(K: int, size: int, config: SelectionConfig, mesh):
    """A chunk of `size` empty tasks of the class bucket `K` (at the candidate cap), placed as a solve places it."""
    task = empty_problem(K, config.max_candidates, config.samples_per_class)
    return sharding.shard_rows(jax.tree.map(lambda x: np.stack([x] * size), task), mesh)


def brute_force(
    hub: Hub, names, config: SelectionConfig = SelectionConfig(), seed: int = 0, limit: int = 4096
) -> Selection:
    """The best discrete selection by exhaustive search (small tasks only): every
    combination of one candidate per class, temperatures and biases calibrated."""
    classes = task_lib.resolve(hub.sdag, names)
    if unmatched := [c.name for c in classes if c.by_name]:
        raise task_lib.TaskError(f"brute force searches experts of matched classes; {unmatched} match no SDAG node")
    cands = candidates(hub, classes, config)
    counts = [len(cs) for cs in cands]
    if int(np.prod(counts)) > limit:
        raise ValueError(f"{int(np.prod(counts))} combinations exceed the brute-force limit {limit}")
    problem = with_scores(build_problem(hub, classes, cands, config.samples_per_class, seed, cost=config.cost))
    picks = pad_picks(np.array(list(itertools.product(*[range(n) for n in counts])), np.int32))
    result = jax.device_get(programs.compiled_call(chco.brute_force, problem, picks, config=config.solver))
    return _make_selection(hub, classes, cands, result)


def fixed_selection(
    hub: Hub, classes, cands, pick: list[int], seed: int = 0, config: SelectionConfig = SelectionConfig()
) -> Selection:
    """A selection of the given candidate per class, with temperatures and biases calibrated (baselines)."""
    problem = with_scores(build_problem(hub, classes, cands, config.samples_per_class, seed, cost=config.cost))
    picks = np.zeros(problem.cand_mask.shape[0], np.int32)
    picks[: len(pick)] = pick
    result = jax.device_get(programs.compiled_call(chco.solve_fixed, problem, picks, config=config.solver))
    return _make_selection(hub, classes, cands, result)


def _with_names(classes: list[task_lib.TaskClass], matched: Selection | None, text_model: str | None) -> Selection:
    """The task's Selection: CHCO's `matched` (over the classes with nodes, or None with fewer than two) with the
    classes by name put back in their places, answered by `text_model` (`by_name.py`)."""
    if text_model is None:
        return matched
    solved = matched or Selection([], [], [], [], {}, [], [], None, [], [])  # no CHCO: nothing chosen
    row = {name: i for i, name in enumerate(solved.classes)}

    def per_class(values: list, empty) -> list:
        return [values[row[c.name]] if c.name in row else empty for c in classes]

    return dataclasses.replace(
        solved,
        classes=[c.name for c in classes],
        nodes=[c.node for c in classes],
        concepts=[sorted(c.concepts) for c in classes],
        choices=per_class(solved.choices, []),
        biases=per_class(solved.biases, 0.0),
        val_accuracy_per_class=per_class(solved.val_accuracy_per_class, None),
        num_candidates=per_class(solved.num_candidates, 0),
        considered=per_class(solved.considered, []),
        by_name=[c.name for c in classes if c.by_name],
        close={c.name: list(c.match.alternatives) for c in classes if c.by_name},
        text_model=text_model,
    )


def _make_selection(hub: Hub, classes, cands, result: chco.Result, combination: str = "fitted") -> Selection:
    """A Selection from solver output (discrete `w`, `t`, `b`; `t` indexed like `task_models(cands)`), made by
    `combination` (`SolverConfig.combination`)."""
    general, models = hub.general_id, task_models(cands)
    choices, considered = [], []
    for k, cs in enumerate(cands):
        chosen, weighed = [], []
        for c, cand in enumerate(cs):
            heads = hub.entry(cand.model).heads
            names = [heads[j] for j in cand.heads]
            if result.w[k, c] > 0:
                chosen.append(Choice(cand.model, list(cand.heads), names, float(result.w[k, c])))
            if result.continuous_w is not None:
                weighed.append({"model": cand.model, "heads": names, "weight": float(result.continuous_w[k, c])})
        choices.append(chosen)
        considered.append(weighed)
    used = {c.model for cs in choices for c in cs}
    return Selection(
        classes=[c.name for c in classes],
        nodes=[c.node for c in classes],
        concepts=[sorted(c.concepts) for c in classes],
        choices=choices,
        temperatures={m: float(result.t[i]) for i, m in enumerate(models) if m in used},
        biases=[float(b) for b in result.b[: len(classes)]],
        uncovered=[cls.name for cls, cs in zip(classes, cands) if all(c.model == general for c in cs)],
        val_accuracy=float(result.val_accuracy),
        val_accuracy_per_class=[float(a) for a in result.val_accuracy_per_class[: len(classes)]],
        num_candidates=[len(cs) for cs in cands],
        excluded=dict(hub.excluded()),
        considered=considered,
        combination=combination,
    )
