"""CHCO at scale: batched vs task-by-task vs brute force, scaling in K and C, quality.

    python benchmarks/chco.py [--hub PATH] [--tasks 1 100 1000] [--quality 200] [--json out/chco.json]

Throughput: random tasks (2-6 concepts) from the hub; the first call (compiling) is
reported apart from the steady state. The speed-up of batching is measured on the
same tasks on both sides: the first `--serial-limit` tasks (task by task is slow, so
few), run task by task and batched. Steady-state and speed-up timings are the medians
of `--repeats` interleaved rounds (A, B, A, B, ...) after one warm-up call each; the
JSON keeps every repeat's time and the number of tasks the speed-up was measured on.
Quality: on small instances (2-3 classes), CHCO's validation accuracy minus the
brute-force optimum. Scaling: synthetic problems with K classes and C candidates.
Trade-off: mean validation accuracy and models used under `max_models` caps and cost weights.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time

import jax
import numpy as np
from common import MIN_REPEATS, interleaved, save, timed

import mll_jax as mll
from mll_jax import paths, selection
from mll_jax.configs.selection import SelectionConfig, SolverConfig
from mll_jax.experiments.tasks import random_tasks
from mll_jax.selection import chco


def select_each(hub, tasks, config) -> list:
    return [mll.select(hub, names, config=config) for names in tasks]


def throughput(hub, counts: list[int], serial_limit: int, config, rng, repeats: int) -> list[dict]:
    """Per task count: the batched first call, its steady state, and the speed-up of batching measured on the same
    tasks: the first `serial_limit` of them, task by task against batched, timed interleaved (medians)."""
    rows = []
    for count in counts:
        tasks = random_tasks(hub, count, rng)
        first = timed(mll.select_many, hub, tasks, config=config)
        same = tasks[:serial_limit]
        # The warm-up calls compile each side's programs and fill the hub's caches, which both sides share.
        times, _ = interleaved(
            {
                "batched_all": lambda t=tasks: mll.select_many(hub, t, config=config),
                "serial": lambda t=same: select_each(hub, t, config),
                "batched": lambda t=same: mll.select_many(hub, t, config=config),
            },
            repeats,
        )
        seconds = {name: statistics.median(t) for name, t in times.items()}
        rows.append(
            {
                "tasks": count,
                "batched_first_s": first,
                "batched_ms_per_task": 1000 * seconds["batched_all"] / count,
                "same_tasks": len(same),
                "serial_ms_per_task": 1000 * seconds["serial"] / len(same),
                "batched_ms_per_task_same_tasks": 1000 * seconds["batched"] / len(same),
                "speedup_same_tasks": seconds["serial"] / seconds["batched"],
                "repeats": repeats,
                "times_s": times,
            }
        )
    return rows


def quality(hub, count, config, rng) -> dict:
    tasks = random_tasks(hub, count, rng, sizes=(2, 4))
    start = time.perf_counter()
    chosen = mll.select_many(hub, tasks, config=config)
    chco_s = time.perf_counter() - start
    start = time.perf_counter()
    optimum = [selection.brute_force(hub, t, config) for t in tasks]
    brute_s = time.perf_counter() - start
    gaps = np.array([o.val_accuracy - s.val_accuracy for o, s in zip(optimum, chosen)])
    return {
        "instances": count,
        "gap_mean": float(gaps.mean()),
        "gap_p95": float(np.percentile(gaps, 95)),
        "gap_max": float(gaps.max()),
        "within_0.01": float((gaps <= 0.01).mean()),
        "chco_ms_per_task": 1000 * chco_s / count,
        "brute_force_ms_per_task": 1000 * brute_s / count,
        "combinations_mean": float(np.mean([np.prod(s.num_candidates) for s in chosen])),
    }


def tradeoff(hub, count, config, rng, caps=(1, 2, 3, None), cost_weights=(0.0, 0.01, 0.1)) -> list[dict]:
    """Accuracy against models used: hard caps (max_models) and soft costs (cost_weight)."""
    tasks = random_tasks(hub, count, rng, sizes=(3, 7))
    rows = []
    for cap, weight in [(c, config.solver.cost_weight) for c in caps] + [(None, w) for w in cost_weights]:
        cfg = dataclasses.replace(config, solver=dataclasses.replace(config.solver, max_models=cap, cost_weight=weight))
        chosen = []
        for t in tasks:  # a cap some task cannot meet raises; count it as infeasible
            with contextlib.suppress(mll.TaskError):
                chosen.append(mll.select(hub, t, config=cfg))
        rows.append(
            {
                "max_models": cap,
                "cost_weight": weight,
                "feasible": len(chosen) / count,
                "val_accuracy": float(np.mean([s.val_accuracy for s in chosen])),
                "models_used": float(np.mean([len(s.models) for s in chosen])),
            }
        )
    return rows


def synthetic(K: int, C: int, per_class: int, rng: np.random.Generator) -> chco.Problem:
    N, M = K * per_class, C
    labels = np.repeat(np.arange(K), per_class).astype(np.int32)
    scores = rng.normal(-2.0, 1.0, (N, K, C)).astype(np.float32)
    scores[:, :, 0] += 1.5 * (np.eye(K)[labels] > 0)
    return chco.Problem(
        *chco.halves(scores, labels, np.arange(N) % 2 == 0),
        cand_mask=np.ones((K, C), bool),
        cand_model=np.tile(np.arange(C, dtype=np.int32), (K, 1)),
        model_cost=np.full(M, 0.1, np.float32),
    )


def scaling(config, rng, shapes) -> list[dict]:
    rows = []
    for K, C in shapes:
        problem = synthetic(K, C, config.samples_per_class, rng)
        first = timed(chco.solve, problem, jax.random.key(0), config.solver)
        steady = timed(chco.solve, problem, jax.random.key(1), config.solver)
        rows.append({"K": K, "C": C, "first_s": first, "steady_ms": 1000 * steady})
    return rows


def _parse(default, text: str):
    """A --set value in the type of the field's default (None defaults take numbers)."""
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes")
    return type(default or 0)(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default=str(paths.default_hub()))
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument(
        "--serial-limit", type=int, default=20, help="tasks run task by task (and batched) for the speed-up"
    )
    parser.add_argument(
        "--repeats", type=int, default=MIN_REPEATS, help=f"timed runs per side (at least {MIN_REPEATS})"
    )
    parser.add_argument("--quality", type=int, default=200)
    parser.add_argument("--scaling", default="2x8,8x8,16x32,64x64,16x256", help="KxC shapes, comma-separated")
    parser.add_argument("--tradeoff", type=int, default=30, help="tasks for the accuracy/cost trade-off (0: skip)")
    parser.add_argument("--json", default="out/chco.json")
    parser.add_argument("--only-scaling", action="store_true", help="run only the synthetic scaling (no hub needed)")
    parser.add_argument(
        "--set", nargs="*", default=[], help="SelectionConfig or SolverConfig overrides, e.g. restarts=2 steps=60"
    )
    args = parser.parse_args()
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}")
    paths.enable_compile_cache()
    if args.only_scaling:
        args.tasks, args.quality, args.tradeoff = [], 0, 0
    hub = None if args.only_scaling else mll.Hub.open(args.hub)
    overrides = dict(item.split("=", 1) for item in args.set)
    solver_fields = {f.name for f in dataclasses.fields(SolverConfig)}
    selection_fields = {f.name for f in dataclasses.fields(SelectionConfig)} - {"solver"}
    unknown = sorted(set(overrides) - solver_fields - selection_fields)
    if unknown:
        parser.error(f"unknown config fields {unknown}; known: {sorted(solver_fields | selection_fields)}")
    solver = {k: _parse(getattr(SolverConfig(), k), v) for k, v in overrides.items() if k in solver_fields}
    chosen = {k: _parse(getattr(SelectionConfig(), k), v) for k, v in overrides.items() if k in selection_fields}
    config = SelectionConfig(**chosen, solver=SolverConfig(**solver))
    rng = np.random.default_rng(0)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.scaling.split(",") if s]
    result = {"config": dataclasses.asdict(config), "backend": jax.default_backend(), "devices": jax.device_count()}
    result |= {"serial_limit": args.serial_limit, "repeats": args.repeats}

    result["throughput"] = throughput(hub, args.tasks, args.serial_limit, config, rng, args.repeats)
    print(
        f"{'tasks':>6s} {'first call s':>12s} {'batched ms/task':>16s} | same tasks: {'tasks':>5s} "
        f"{'serial ms/task':>15s} {'batched ms/task':>16s} {'speedup':>8s}"
    )
    for r in result["throughput"]:
        print(
            f"{r['tasks']:6d} {r['batched_first_s']:12.1f} {r['batched_ms_per_task']:16.1f} | {'':11s} "
            f"{r['same_tasks']:5d} {r['serial_ms_per_task']:15.1f} "
            f"{r['batched_ms_per_task_same_tasks']:16.1f} {r['speedup_same_tasks']:8.2f}",
            flush=True,
        )
    save(result, args.json)
    result["quality"] = quality(hub, args.quality, config, rng) if args.quality else None
    if q := result["quality"]:
        print(
            f"quality on {q['instances']} small tasks: brute force minus CHCO validation accuracy "
            f"mean {q['gap_mean']:.4f}, 95th percentile {q['gap_p95']:.4f}, max {q['gap_max']:.4f}, "
            f"within 0.01: {100 * q['within_0.01']:.1f}%; CHCO {q['chco_ms_per_task']:.1f} ms/task, brute force "
            f"{q['brute_force_ms_per_task']:.1f} ms/task ({q['combinations_mean']:.0f} combinations on average)",
            flush=True,
        )
    save(result, args.json)
    result["scaling"] = scaling(config, rng, shapes)
    print(f"{'K':>4s} {'C':>4s} {'first s':>8s} {'steady ms':>10s}")
    for r in result["scaling"]:
        print(f"{r['K']:4d} {r['C']:4d} {r['first_s']:8.1f} {r['steady_ms']:10.1f}", flush=True)
    save(result, args.json)
    result["tradeoff"] = tradeoff(hub, args.tradeoff, config, rng) if args.tradeoff else []
    print(f"{'max_models':>10s} {'cost weight':>11s} {'feasible':>8s} {'val acc':>8s} {'models used':>11s}")
    for r in result["tradeoff"]:
        print(
            f"{str(r['max_models']):>10s} {r['cost_weight']:11.2f} {r['feasible']:8.2f} "
            f"{r['val_accuracy']:8.3f} {r['models_used']:11.2f}"
        )
    save(result, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
