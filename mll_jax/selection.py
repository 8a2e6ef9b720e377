"""Selection (DESIGN 3.2): candidates from model labels, CHCO on the label cache.

`select(hub, names)` resolves the names, lists candidates per class and runs CHCO on
the classes' node samples; `select(hub, [names, names, ...])` does many tasks at
once. The general model is the only candidate for a class no expert covers
("uncovered"); by default it is a candidate for every other class too (a
text-aligned patch is often as good as an expert, and CHCO picks by validation
accuracy), and `Config(patch_every_class=False)` keeps it to uncovered classes as
DESIGN 3.2 states.

Batching: tasks are padded to bucketed shapes (`bucket_shape`; a fixed number of
node samples per class; chunks of tasks of power-of-four sizes), so one compiled program
serves a bucket. Candidate scores are gathered inside the jitted program from one
matrix of every head's probabilities on every store sample (the label cache): no
inference and no Python loop over samples. A chunk's tasks are split over every
local device (a 'data' mesh); each task's random key comes from the seed and its
names, so the answer does not depend on the batch or the number of devices.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mll_jax import chco, labeling, sharding
from mll_jax import task as task_lib
from mll_jax.hub import Hub
from mll_jax.store import fit_mask

log = logging.getLogger(__name__)


def default_chunk() -> int:
    """Most tasks per call of the compiled program. On CPU a task's optimisation is compute-bound
    and bigger chunks only add cache pressure (measured: 16 is as fast as any); accelerators
    want wide batches."""
    return 16 if jax.default_backend() == "cpu" else 256


EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Candidate:
    model: str
    heads: tuple[int, ...]


@dataclasses.dataclass
class Choice:
    model: str
    heads: list[int]
    head_names: list[str]
    weight: float


@dataclasses.dataclass
class Selection:
    classes: list[str]
    nodes: list[str]
    concepts: list[list[str]]
    choices: list[list[Choice]]  # per class
    temperatures: dict[str, float]  # log-temperature t per used model
    biases: list[float]
    uncovered: list[str]
    val_accuracy: float
    val_accuracy_per_class: list[float]
    num_candidates: list[int]
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> why it was not considered
    considered: list[list[dict]] = dataclasses.field(default_factory=list)  # per class: model, heads, weight

    @property
    def models(self) -> list[str]:
        return sorted({c.model for cs in self.choices for c in cs})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Selection:
        doc = dict(doc)
        doc["choices"] = [[Choice(**c) for c in cs] for cs in doc["choices"]]
        return cls(**doc)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    def table(self) -> str:
        rows = [f"{'class':14s} {'model':28s} {'heads':28s} {'weight':>6s} {'val acc':>7s}"]
        for name, cs, acc in zip(self.classes, self.choices, self.val_accuracy_per_class):
            for c in cs:
                rows.append(f"{name:14s} {c.model:28s} {','.join(c.head_names)[:28]:28s} {c.weight:6.2f} {acc:7.3f}")
        rows.append(f"models used: {', '.join(self.models)}; uncovered: {', '.join(self.uncovered) or '-'}")
        return "\n".join(rows)

    def explain(self) -> str:
        """The table, then every candidate CHCO weighed, its continuous weight, and the calibration."""
        rows = [self.table(), "", f"validation accuracy {self.val_accuracy:.3f}"]
        for name, node, considered, b in zip(self.classes, self.nodes, self.considered, self.biases):
            rows.append(f"{name} -> {node}  (bias {b:+.2f}; {len(considered)} candidates)")
            for c in sorted(considered, key=lambda c: -c["weight"]):
                rows.append(f"    {c['weight']:5.2f}  {c['model']:28s} heads {c['heads']}")
        rows.append("log-temperatures: " + ", ".join(f"{m} {t:+.2f}" for m, t in self.temperatures.items()))
        return "\n".join(rows)


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
    """The hub's label cache (memoised on the hub until a label record changes)."""
    ids = [i for i in hub.entries if not labeling.problem(hub, i)]
    records = [hub.labels(i) for i in ids]
    key = tuple(id(r) for r in records)
    cached = hub.__dict__.get("_label_cache")
    if cached is not None and cached[0] == key:
        return cached[1]
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
    cache = LabelCache(
        models=tuple(ids),
        probs=jnp.asarray(np.pad(probs, ((0, 0), (0, -probs.shape[1] % HEAD_PAD))), jnp.float32),
        head_model=np.repeat(np.arange(len(ids)), sizes),
        head_offset=offset,
        fired=fired,
        general_heads=general_heads,
        cost=np.pad(params / params.max(), (0, -len(params) % MODEL_PAD)),
        general=general,
    )
    hub.__dict__["_label_cache"] = (key, cache)
    return cache


def _class_of_concept(hub: Hub, classes) -> np.ndarray:
    column = {c: i for i, c in enumerate(hub.sdag.concept_nodes)}
    class_of = np.full(len(column), -1)
    for k, cls in enumerate(classes):
        class_of[[column[c] for c in cls.concepts]] = k
    return class_of


def candidates(hub: Hub, classes: list[task_lib.TaskClass], patch_every_class: bool = True) -> list[list[Candidate]]:
    """Per class: (expert, heads) that fire on it and on no other class of the task; then the general model
    (for every class, or with `patch_every_class` False only for a class no expert covers)."""
    cache = label_cache(hub)
    class_of = _class_of_concept(hub, classes)
    K = len(classes)
    onehot = np.zeros((len(class_of), K), np.int32)
    onehot[class_of >= 0, class_of[class_of >= 0]] = 1
    on = (cache.fired.astype(np.int32) @ onehot) > 0  # [H_total, K]
    valid = on & (on.sum(1, keepdims=True) == 1)
    out: list[list[Candidate]] = []
    for k in range(K):
        heads = np.flatnonzero(valid[:, k])
        by_model = np.split(heads, np.searchsorted(heads, cache.head_offset[1:-1]))
        cands = [
            Candidate(cache.models[m], tuple(int(j - cache.head_offset[m]) for j in hs))
            for m, hs in enumerate(by_model)
            if len(hs)
        ]
        general = cache.general_heads[class_of == k]
        if (patch_every_class or not cands) and cache.general >= 0 and (general >= 0).all():
            g = cache.general
            cands.append(Candidate(cache.models[g], tuple(int(j - cache.head_offset[g]) for j in general)))
        out.append(cands)
    return out


def _bucket(n: int, smallest: int = 2) -> int:
    return max(smallest, 1 << (n - 1).bit_length())


def _items_by_concept(hub: Hub, seed: int) -> dict[str, dict[int, np.ndarray]]:
    """Per half, per concept column: its store indices in one fixed shuffle per seed (memoised on the hub)."""
    memo = hub.__dict__.setdefault("_items_by_concept", {})
    if seed not in memo:
        order = np.random.default_rng(seed).permutation(len(hub.store))
        in_fit = fit_mask(len(hub.store))[order]
        concept_of = hub.store.concepts[order]
        memo[seed] = {
            half: {int(c): order[in_half & (concept_of == c)] for c in np.unique(concept_of)}
            for half, in_half in (("fit", in_fit), ("val", ~in_fit))
        }
    return memo[seed]


def node_samples(hub: Hub, classes, per_class: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Store indices and class labels of each half, "fit" and "val": up to `per_class // 2` items
    per class from that half of the store, stratified over the class's concepts.

    Items come from one fixed shuffle of the store per seed, so a class gets the same
    samples in every task.
    """
    column = {c: i for i, c in enumerate(hub.sdag.concept_nodes)}
    size = per_class // 2
    halves = {}
    for half, items in _items_by_concept(hub, seed).items():
        index, labels = [], []
        for k, cls in enumerate(classes):
            quota = -(-size // len(cls.concepts))
            chosen = [items.get(column[c], np.zeros(0, np.int64))[:quota] for c in sorted(cls.concepts)]
            index.append(np.concatenate(chosen)[:size])
            labels.append(np.full(len(index[-1]), k))
        halves[half] = np.concatenate(index), np.concatenate(labels)
    return halves


def bucket_shape(classes, cands) -> tuple[int, int]:
    """Padded (K, C) of a task: classes exact up to 8, then a power of two; candidates to a multiple of 8.

    Node samples scale with K, so padding K costs twice (samples and classes); C is
    coarser. Bounded buckets keep the number of compiled programs small, so a
    long-running process stops compiling (and growing) early.
    """
    K = len(classes)
    return (K if K <= 8 else _bucket(K)), -(-max(len(cs) for cs in cands) // 8) * 8


def chunk_sizes(tasks: int, limit: int) -> list[int]:
    """Tasks per compiled call, covering `tasks` exactly: powers of 4 (1, 4, 16, ...) up to
    `limit`, largest first, so a few programs serve any count and no chunk is padded."""
    size, sizes = 1, []
    while size * 4 <= limit:
        size *= 4
    while tasks > 0:
        while size > tasks:
            size //= 4
        sizes.append(size)
        tasks -= size
    return sizes


def build_problem(
    hub: Hub, classes, cands, per_class: int = chco.Config.samples_per_class, seed: int = 0, shape=None
) -> dict:
    """One task's padded arrays (node samples of each half, candidate head memberships, masks); `shape` = (K, C)."""
    cache = label_cache(hub)
    K, C = shape or bucket_shape(classes, cands)
    membership = np.zeros((K, C, cache.probs.shape[1]), np.float32)
    cand_mask = np.zeros((K, C), bool)
    cand_model = np.zeros((K, C), np.int32)
    for k, cs in enumerate(cands):
        for c, cand in enumerate(cs):
            m = cache.models.index(cand.model)
            membership[k, c, cache.head_offset[m] + np.array(cand.heads)] = 1.0
            cand_mask[k, c] = True
            cand_model[k, c] = m
    task = {"membership": membership, "cand_mask": cand_mask, "cand_model": cand_model}
    for half, (index, labels) in node_samples(hub, classes, per_class, seed).items():
        pad = K * (per_class // 2) - len(index)
        task[half] = {
            "index": np.pad(index, (0, pad)).astype(np.int32),
            "labels": np.pad(labels, (0, pad)).astype(np.int32),
            "weight": np.pad(np.ones(len(index), np.float32), (0, pad)),
        }
    return task


def with_scores(task: dict, probs: jax.Array, cost: jax.Array) -> dict:
    """The CHCO problem of one task: candidate scores gathered from the label cache (traceable)."""
    K, C, H = task["membership"].shape
    heads = task["membership"].reshape(K * C, H).T

    def half(part):
        summed = probs[part["index"]] @ heads  # [N, K*C]
        return {"scores": jnp.log(summed + EPS).reshape(-1, K, C), "labels": part["labels"], "weight": part["weight"]}

    return {
        "fit": half(task["fit"]),
        "val": half(task["val"]),
        "cand_mask": task["cand_mask"],
        "cand_model": task["cand_model"],
        "model_cost": cost,
    }


MAP_BUDGET = 0.75  # share of the process's memory-map limit compiled programs may fill before they are dropped
MAX_PROGRAMS = 48  # where that limit cannot be read: compiled programs kept per CHCO function
_signatures: dict = {}


def _maps_in_use() -> float | None:
    """Share of the process's memory-map limit in use (Linux), else None."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps) / limit
    except (OSError, ValueError):
        return None


def compiled_call(fn, *args, config: chco.Config):
    """`fn(*args, config=config)`, after dropping every CHCO function's compiled programs if a new
    one would not fit.

    On XLA:CPU each compiled CHCO program holds ~1000 memory maps and a process may
    hold only so many (65530 by default on Linux): without a bound, a long run over
    many task shapes and configs fails in the compiler. Checked only when the call
    needs a new program; dropped programs recompile from JAX's disk cache.
    """
    leaves = jax.tree.leaves(args)
    signature = (config, tuple((np.shape(x), getattr(x, "dtype", None) or np.result_type(x)) for x in leaves))
    seen = _signatures.setdefault(fn, set())
    if signature not in seen:
        used = _maps_in_use()
        if used > MAP_BUDGET if used is not None else len(seen) >= MAX_PROGRAMS:
            for compiled, signatures in _signatures.items():
                compiled.clear_cache()
                signatures.clear()
        seen.add(signature)
    return fn(*args, config=config)


@functools.partial(jax.jit, static_argnames=("config",))
def _solve_chunk(tasks: dict, seed, probs: jax.Array, cost: jax.Array, config: chco.Config) -> dict:
    def one(task):
        key = jax.random.fold_in(jax.random.key(seed), task["name_hash"])
        return chco.solve(with_scores(task, probs, cost), key, config)

    return jax.vmap(one)(tasks)


def name_hash(names) -> np.uint32:
    """Folded into the seed to give a task's random key, so the key does not depend on batch position."""
    return np.uint32(zlib.crc32("\x1f".join(names).encode()))


def select(
    hub: Hub,
    names,
    config: chco.Config = chco.Config(),
    seed: int = 0,
    max_models: int | None = None,
    chunk: int | None = None,
    progress: bool = False,
):
    """Choose heads for one task (a list of class names) or many (a list of such lists).

    Returns a Selection, or a list of Selections in the order of the tasks.
    """
    chunk = chunk or default_chunk()
    many = not isinstance(names, str) and len(names) > 0 and not isinstance(names[0], str)
    tasks = [list(t) for t in names] if many else [names]
    if max_models is not None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        config = dataclasses.replace(config, max_models=max_models)
    missing = [i for i in hub.entries if hub.labels(i) is None]
    if missing:
        raise ValueError(f"models {missing} are not labelled; run `mll-jax label` first")
    resolved = [task_lib.resolve(hub.sdag, t) for t in tasks]
    cands = [candidates(hub, classes, config.patch_every_class) for classes in resolved]
    for t, (classes, cs) in enumerate(zip(resolved, cands)):
        empty = [cls.name for cls, c in zip(classes, cs) if not c]
        if empty:
            raise task_lib.TaskError(f"task {t}: no expert or general model can score {empty}; add a general model")
    cache = label_cache(hub)
    mesh = sharding.mesh()  # tasks are split over every local device
    probs, cost = sharding.replicate((cache.probs, jnp.asarray(cache.cost)), mesh)
    buckets: dict[tuple[int, int], list[int]] = {}
    for t, (classes, cs) in enumerate(zip(resolved, cands)):
        buckets.setdefault(bucket_shape(classes, cs), []).append(t)
    results: list[Selection | None] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc="selecting", disable=not progress)
    for shape, members in buckets.items():
        log.info("bucket K=%d C=%d: %d task(s)", *shape, len(members))
        starts = np.cumsum([0, *chunk_sizes(len(members), chunk)])
        for start, stop in zip(starts[:-1], starts[1:]):
            part = members[start:stop]
            problems = [build_problem(hub, resolved[t], cands[t], config.samples_per_class, seed, shape) for t in part]
            for p, t in zip(problems, part):
                p["name_hash"] = name_hash(tasks[t])
            size = sharding.round_up(len(part), mesh)
            problems += [problems[0]] * (size - len(part))  # pad to a multiple of the devices with copies
            stacked = sharding.shard_rows(jax.tree.map(lambda *rows: np.stack(rows), *problems), mesh)
            out = jax.device_get(compiled_call(_solve_chunk, stacked, seed, probs, cost, config=config))
            for i, t in enumerate(part):
                result = jax.tree.map(lambda x, i=i: x[i], out)
                results[t] = make_selection(hub, resolved[t], cands[t], list(cache.models), result)
                if max_models is not None and len(results[t].models) > max_models:
                    raise task_lib.TaskError(
                        f"task {tasks[t]}: no selection of at most {max_models} model(s) scores every class; "
                        f"the smallest found uses {len(results[t].models)}"
                    )
            bar.update(len(part))
    bar.close()
    return results if many else results[0]


def brute_force(hub: Hub, names, config: chco.Config = chco.Config(), seed: int = 0, limit: int = 4096) -> Selection:
    """The best discrete selection by exhaustive search (small tasks only): every
    combination of one candidate per class, temperatures and biases calibrated."""
    classes = task_lib.resolve(hub.sdag, names)
    cands = candidates(hub, classes, config.patch_every_class)
    counts = [len(cs) for cs in cands]
    if int(np.prod(counts)) > limit:
        raise ValueError(f"{int(np.prod(counts))} combinations exceed the brute-force limit {limit}")
    cache = label_cache(hub)
    task = build_problem(hub, classes, cands, config.samples_per_class, seed)
    problem = with_scores(task, cache.probs, jnp.asarray(cache.cost))
    picks = np.array(list(itertools.product(*[range(n) for n in counts])), np.int32)
    picks = np.concatenate([picks, np.repeat(picks[:1], _bucket(len(picks)) - len(picks), 0)])  # reuse compiles
    result = jax.device_get(compiled_call(chco.brute_force, problem, picks, config=config))
    return make_selection(hub, classes, cands, list(cache.models), result)


def make_selection(hub: Hub, classes, cands, models: list[str], result: dict) -> Selection:
    """A Selection from solver output (discrete `w`, `t`, `b`; `t` indexed like `models`)."""
    general = hub.general_id
    choices, considered = [], []
    for k, cs in enumerate(cands):
        chosen, weighed = [], []
        for c, cand in enumerate(cs):
            heads = hub.entry(cand.model)["heads"]
            names = [heads[j] for j in cand.heads]
            if result["w"][k, c] > 0:
                chosen.append(Choice(cand.model, list(cand.heads), names, float(result["w"][k, c])))
            if "continuous_w" in result:
                weighed.append({"model": cand.model, "heads": names, "weight": float(result["continuous_w"][k, c])})
        choices.append(chosen)
        considered.append(weighed)
    used = {c.model for cs in choices for c in cs}
    return Selection(
        classes=[c.name for c in classes],
        nodes=[c.node for c in classes],
        concepts=[sorted(c.concepts) for c in classes],
        choices=choices,
        temperatures={m: float(result["t"][i]) for i, m in enumerate(models) if m in used},
        biases=[float(b) for b in result["b"][: len(classes)]],
        uncovered=[cls.name for cls, cs in zip(classes, cands) if all(c.model == general for c in cs)],
        val_accuracy=float(result["val_accuracy"]),
        val_accuracy_per_class=[float(a) for a in result["val_accuracy_per_class"][: len(classes)]],
        num_candidates=[len(cs) for cs in cands],
        excluded={i: labeling.problem(hub, i) for i in hub.entries if labeling.problem(hub, i)},
        considered=considered,
    )
