"""Soak: many selections and reuse predictions in one process; memory and compile caches must stay flat.

    python benchmarks/soak.py [--hub PATH] [--selections 10000] [--predictions 1000000] [--json out/soak.json]

Prints a table of resident memory per tenth of the run and writes JSON. Selections
are made one task per call, as a user's loop would, with a light CHCO
configuration (this measures leaks, not selection quality). A
warm-up (500 selections, one prediction per classifier) compiles every program
first, so the measured run shows growth that is not compilation; the number of
compiled programs is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import resource
import time

import numpy as np
from common import Compilations, save
from tqdm.auto import tqdm

import mll_jax as mll
from mll_jax import data, paths
from mll_jax.configs.selection import SelectionConfig, SolverConfig
from mll_jax.experiments.tasks import random_tasks
from mll_jax.selection import programs

LIGHT = SelectionConfig(samples_per_class=64, solver=SolverConfig(restarts=2, steps=40))


def rss_mib() -> float:
    """Resident memory after returning freed heap to the OS, so allocator slack is not counted as growth."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def growth(samples: list[float]) -> float:
    tenth = max(len(samples) // 10, 1)
    first, last = np.mean(samples[:tenth]), np.mean(samples[-tenth:])
    return float((last - first) / first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default=str(paths.default_hub()))
    parser.add_argument("--selections", type=int, default=10_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", default="out/soak.json")
    args = parser.parse_args()
    paths.enable_compile_cache()
    hub = mll.Hub.open(args.hub)
    rng = np.random.default_rng(0)
    start = time.perf_counter()

    for names in tqdm(random_tasks(hub, args.warmup, rng), desc="warm-up", mininterval=5):
        mll.select(hub, names, config=LIGHT)
    warm_programs = programs.count(programs.solve_chunk)
    start = time.perf_counter()
    select_rss, sels = [], []
    for i, names in enumerate(tqdm(random_tasks(hub, args.selections, rng), desc="selections", mininterval=5)):
        sel = mll.select(hub, names, config=LIGHT)
        if len(sels) < 10:
            sels.append(sel)
        if i % 100 == 0:
            select_rss.append(rss_mib())
    select_seconds = time.perf_counter() - start

    test = data.load("fashion_mnist", "test")
    compilations = Compilations()  # what reuse compiles, from here on
    classifiers = [mll.reuse(hub, s) for s in sels[:10]]
    for clf in classifiers:
        np.asarray(clf(test.images[: args.batch]))
    predict_rss, done, start = [], 0, time.perf_counter()
    calls = args.predictions // args.batch
    for i in tqdm(range(calls), desc="predictions", mininterval=5):
        batch = test.images[(i * args.batch) % len(test) :][: args.batch]
        if len(batch) < args.batch:
            batch = test.images[: args.batch]
        np.asarray(classifiers[i % len(classifiers)](batch))
        done += len(batch)
        if i % 10 == 0:
            predict_rss.append(rss_mib())
    predict_seconds = time.perf_counter() - start
    compilations.close()

    result = {
        "selections": args.selections,
        "predictions": done,
        "select_seconds": select_seconds,
        "predict_seconds": predict_seconds,
        "select_rss_mib": select_rss,
        "predict_rss_mib": predict_rss,
        "select_rss_growth": growth(select_rss),
        "predict_rss_growth": growth(predict_rss),
        "compiled_select_programs_after_warmup": warm_programs,
        "compiled_select_programs": programs.count(programs.solve_chunk),
        "compiled_reuse_programs": compilations.count,
        "config": {"chco": dataclasses.asdict(LIGHT)},
    }
    header = ["phase", "count", "seconds", "RSS first 10% MiB", "RSS last 10% MiB", "growth"]
    print(f"{header[0]:12s} {header[1]:>10s} {header[2]:>8s} {header[3]:>18s} {header[4]:>17s} {header[5]:>7s}")
    for phase, rss, count, seconds in [
        ("select", select_rss, result["selections"], select_seconds),
        ("predict", predict_rss, done, predict_seconds),
    ]:
        tenth = max(len(rss) // 10, 1)
        print(
            f"{phase:12s} {count:10d} {seconds:8.1f} {np.mean(rss[:tenth]):18.1f} {np.mean(rss[-tenth:]):17.1f} "
            f"{100 * growth(rss):6.2f}%"
        )
    print(
        f"compiled programs: select {warm_programs} after warm-up, {result['compiled_select_programs']} at the end; "
        f"reuse {result['compiled_reuse_programs']} (XLA compilations while building and running the classifiers)"
    )
    save(result, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
