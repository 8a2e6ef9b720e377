"""First queries in a new process: names as users type them, after `mll-jax warmup`.

    python benchmarks/first_queries.py [--hub PATH] [--runs 3] [--json out/first_queries.json]

Each run is a fresh process with the warm cache (stored programs, node embeddings)
and jax already imported: it opens the hub, then times the first `select` of one
3-class task whose names all need meaning (`ONE`), then `select` of each of
`TASKS` (15 tasks of 2 to 10 classes, user-typed names from the development
suite), one call each, as a shell user or a notebook would ask them. Also per run:
how many names needed the text encoder, the seconds spent matching, and whether any
CHCO program was traced rather than loaded. The figures are medians over runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import save

ONE = ("running shoes", "tote bag", "hiking boots")  # development names matched by meaning (rule 4)
TEN = (
    "tee shirts", "chinos", "sweater vest", "gown", "parka",
    "oxford shirt", "espadrilles", "trainer shoes", "clutch bag", "cowboy boots",
)  # fmt: skip  # development names, one per store concept
RUNS = 3


def tasks(hub) -> list[list[str]]:
    """The 15 tasks: 14 of the development suite's answerable tasks, evenly spread, and `TEN`."""
    from mll_jax.configs import suite
    from mll_jax.experiments import evaluation

    answerable, _ = evaluation.answerable(hub, [list(t) for t in suite.DEV_TASKS])
    return [*map(list, suite.spread(tuple(answerable), 14)), list(TEN)]


def measure(hub_path: str, task_list: list[list[str]]) -> dict:
    """In this (fresh) process: the timings of one run."""
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # jax imported and its backend up: not the query's cost
    import mll_jax as mll
    from mll_jax import exported
    from mll_jax.concepts import matching, text
    from mll_jax.selection import programs

    start = time.perf_counter()
    hub = mll.Hub.open(hub_path)
    out = {"open_s": time.perf_counter() - start}
    spent = {"texts": 0, "matching_s": 0.0}
    embed, match = text.embed, matching.match

    def counted_embed(texts, *args, **kwargs):
        spent["texts"] += len(texts)
        return embed(texts, *args, **kwargs)

    def timed_match(*args, **kwargs):
        start = time.perf_counter()
        try:
            return match(*args, **kwargs)
        finally:
            spent["matching_s"] += time.perf_counter() - start

    text.embed, matching.match = counted_embed, timed_match  # counted where selection calls them
    start = time.perf_counter()
    mll.select(hub, list(ONE))
    out["one_task_first_s"] = time.perf_counter() - start
    out["one_task_matching_s"], out["one_task_texts_encoded"] = spent["matching_s"], spent["texts"]
    spent.update(texts=0, matching_s=0.0)
    start = time.perf_counter()
    for task in task_list:
        mll.select(hub, task)
    out["fifteen_tasks_s"] = time.perf_counter() - start
    out["fifteen_tasks_matching_s"], out["fifteen_tasks_texts_encoded"] = spent["matching_s"], spent["texts"]
    out["encoder_loaded"] = text.loaded()
    out["programs_loaded"] = programs.count(programs.solve_chunk)
    out["programs_traced"] = exported.traced()
    return out


def fresh(hub_path: str, task_list: list[list[str]]) -> dict:
    """`measure` in a new process (the environment's cache)."""
    command = [sys.executable, __file__, "--measure", hub_path, json.dumps(task_list)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default=None)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--json", default="out/first_queries.json")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], json.loads(args.measure[1]))))
        return {}
    import mll_jax as mll
    from mll_jax import paths

    hub_path = str(args.hub or paths.default_hub())
    task_list = tasks(mll.Hub.open(hub_path))
    subprocess.run([sys.executable, "-m", "mll_jax", "--hub", hub_path, "warmup"], check=True)
    runs = []
    for _ in range(args.runs):
        runs.append(fresh(hub_path, task_list))
        print(json.dumps(runs[-1]), flush=True)
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k.endswith("_s")}
    print(f"{'':28s}{'median s':>10s}{'bar s':>8s}")
    for key, bar in [("open_s", None), ("one_task_first_s", 0.5), ("fifteen_tasks_s", 2.0)]:
        print(f"{key:28s}{medians[key]:10.3f}{'' if bar is None else f'{bar:8.1f}'}")
    print(
        f"matching: {medians['fifteen_tasks_matching_s']:.3f} s of the 15 tasks; texts encoded "
        f"{runs[0]['one_task_texts_encoded']} + {runs[0]['fifteen_tasks_texts_encoded']}; "
        f"programs traced {max(r['programs_traced'] for r in runs)}"
    )
    result = {"hub": hub_path, "one": ONE, "tasks": task_list, "runs": runs, "medians": medians}
    save(result, args.json)
    return result


if __name__ == "__main__":
    main()
