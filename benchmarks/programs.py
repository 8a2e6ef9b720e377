"""First calls: what a new process pays before its first selection, per bucket policy.

    python benchmarks/programs.py [--hub PATH] [--policies 2,3,4,5,6,7,8 2,4,8 4,8 8] [--json out/programs.json]

For each class-bucket policy (`SelectionConfig.class_buckets`), in fresh processes:
`cold` runs with an empty cache (a new machine: trace, lower, compile, store),
`warm` again with that cache (load the stored programs), each the first
`select_many` of the answerable demo suite, then `steady` (the same call again).
Also, in other fresh processes with the warm cache: the first `select` of one
3-class task and the first call of its `reuse` on 1,024 images; and `reuse` of every
task of the suite, each classifier's first and second call on 1,024 images (its
programs are shared with earlier tasks' and read from the cache). A policy with more
buckets pads less (less compute per task) and needs more programs (more to compile
and load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

POLICIES = ("2,3,4,5,6,7,8", "2,4,8", "4,8", "8")
ONE_TASK = ["sandals", "sneakers", "ankle boots"]


def first_calls(hub_path: str, buckets: tuple[int, ...], what: str) -> dict:
    """In this (fresh) process: the suite's first and second `select_many` (`what` "suite"), one
    3-class task's first `select` and the first call of its `reuse` ("one"), or every suite task's
    `reuse`, built and called twice ("reuse")."""
    import jax
    import numpy as np

    start = time.perf_counter()
    import mll_jax as mll
    from mll_jax import data
    from mll_jax.configs import suite
    from mll_jax.configs.selection import SelectionConfig
    from mll_jax.experiments import evaluation
    from mll_jax.selection import programs

    hub = mll.Hub.open(hub_path)
    out = {"import_and_open_s": time.perf_counter() - start, "device": str(jax.devices()[0].device_kind)}
    config = SelectionConfig(class_buckets=buckets)
    if what == "one":
        images = data.load(hub.store_spec.source, "test").images[:1024]
        start = time.perf_counter()
        one = mll.select(hub, ONE_TASK, config=config)
        out["one_task_first_s"] = time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(mll.reuse(hub, one)(images))
        out["reuse_first_s"] = time.perf_counter() - start
        return out
    tasks, _ = evaluation.answerable(hub, [list(t) for t in suite.DEMO_TASKS])
    start = time.perf_counter()
    selections = mll.select_many(hub, tasks, config=config)
    out["suite_first_s"] = time.perf_counter() - start
    if what == "reuse":
        images = data.load(hub.store_spec.source, "test").images[:1024]
        calls = {"reuse_build_s": [], "reuse_first_s": [], "reuse_second_s": []}
        for selection in selections:
            start = time.perf_counter()
            classify = mll.reuse(hub, selection)
            calls["reuse_build_s"].append(time.perf_counter() - start)
            for name in ("reuse_first_s", "reuse_second_s"):
                start = time.perf_counter()
                jax.block_until_ready(classify(images))
                calls[name].append(time.perf_counter() - start)
        return {f"suite_{name}": calls[name] for name in calls}
    start = time.perf_counter()
    mll.select_many(hub, tasks, config=config)
    out["suite_steady_s"] = time.perf_counter() - start
    out["programs"] = programs.count(programs.solve_chunk)
    out["tasks"] = len(tasks)
    out["mean_val_accuracy"] = float(np.mean([s.val_accuracy for s in selections]))
    return out


def fresh(hub_path: str, buckets: str, what: str, cache: Path) -> dict:
    env = {**os.environ, "MLL_JAX_CACHE": str(cache)}
    run = subprocess.run(
        [sys.executable, __file__, "--measure", hub_path, buckets, what], env=env, capture_output=True, text=True
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default=None)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        hub_path, buckets, what = args.measure
        print(json.dumps(first_calls(hub_path, tuple(int(b) for b in buckets.split(",")), what)))
        return {}
    from mll_jax import paths

    hub_path = str(args.hub or paths.default_hub())
    rows = []
    for policy in args.policies:
        cache = Path(tempfile.mkdtemp(prefix="mll_jax_programs_"))
        for part in ("nltk_data", "text"):  # data, not programs: a new machine has them after its first run
            if (paths.cache_dir() / part).exists():
                shutil.copytree(paths.cache_dir() / part, cache / part)
        cold = fresh(hub_path, policy, "suite", cache)
        warm = fresh(hub_path, policy, "suite", cache) | fresh(hub_path, policy, "one", cache)
        warm |= fresh(hub_path, policy, "reuse", cache)
        shutil.rmtree(cache, ignore_errors=True)
        rows.append({"class_buckets": policy, "cold": cold, "warm": warm})
        print(json.dumps(rows[-1]), flush=True)
    header = f"{'class buckets':16s}{'programs':>9s}{'cold s':>9s}{'warm s':>9s}{'steady s':>9s}{'1 task s':>9s}"
    print(header + f"{'reuse s':>9s}{'val acc':>9s}   per suite task, reuse: 1st call mean / median, 2nd call")
    for r in rows:
        c, w = r["cold"], r["warm"]
        first, second = np.asarray(w["suite_reuse_first_s"]), np.asarray(w["suite_reuse_second_s"])
        print(
            f"{r['class_buckets']:16s}{w['programs']:9d}{c['suite_first_s']:9.2f}{w['suite_first_s']:9.2f}"
            f"{w['suite_steady_s']:9.2f}{w['one_task_first_s']:9.2f}{w['reuse_first_s']:9.2f}"
            f"{w['mean_val_accuracy']:9.4f}   {first.mean():.3f} / {np.median(first):.3f} s, {second.mean():.3f} s"
        )
    result = {"hub": hub_path, "tasks_note": "answerable demo suite", "policies": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
