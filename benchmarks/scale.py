"""Scale: what building, adding, opening, labelling, selecting and reusing cost in hubs of 17, 1,000 and 10,000 experts.

    python benchmarks/scale.py [--sizes 17 1000 10000] [--work DIR] [--json out/scale.json] [--caps]
                               [--backend postgresql [--postgres URL]]

The 17-expert hub is the demo hub (built and labelled here unless `--demo PATH`
names one); each larger hub is a copy of it grown by `zoo.generate` (mostly linear
heads on shared backbones) and labelled. Per size:

    build_s                     growing the demo hub to N experts: training, adding and labelling them
    add_ms_first10 / _last10    mean ms of 10 adds into the demo hub's copy before it grows / after it
                                has N experts (5 heads over a backbone, 5 MLPs; removed again)
    open_s                      `Hub.open` and listing its experts, in a fresh process (median of 5)
    label_new_model_s           labelling one stand-alone CNN (the same model for every size)
    select_one_ms               one 3-class task, warm process (median of 5)
    select_batched_ms_per_task  1,000 random tasks of 2-6 classes (`--batched-tasks`) in one `select_many`,
                                steady state
    reuse_first_call_s          `reuse` of the 3-class selection and its first call on 1,024 images
    peak_rss_mib                peak resident memory of the fresh process that opens, selects and reuses
    disk_mib                    the hub directory

Opening, selecting and reusing run in a fresh process per size (`--measure`), so
`peak_rss_mib` is selection's and not the build's.

`--backend postgresql` also moves each size's hub (a copy of its directory) to a
PostgreSQL database (`--postgres URL`, or a throw-away local cluster) and measures
adds, opening and selecting on both backends side by side: `--rounds` rounds of
(SQLite, PostgreSQL) adds and fresh-process selections and `--opens` pairs of
fresh-process opens, interleaved, so that the machine's load falls on both alike.
A size's `backends` row holds each side's medians, every run, and `ratios`
(PostgreSQL over SQLite). With the local cluster a third side, `postgresql_pooled`,
reaches the same database through a session-mode PgBouncer in front of the server
(`ratios_pooled`): a client's connection is then a socket to the pooler, not a new
server process, as a hub shared by many hosts' short-lived processes would be run.
All sides do the same work (the same hub, tasks, process layout and settings); only
where the rows are read from differs. The exponents are least-squares slopes of
log(figure) against log(experts): 0 is flat, 1 linear. `--caps` also solves the
development suite on the second size's hub under several `max_candidates`
and reports mean validation and development-split accuracy against no cap.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FIELDS = (
    "build_s",
    "add_ms_first10",
    "add_ms_last10",
    "open_s",
    "label_new_model_s",
    "select_one_ms",
    "select_batched_ms_per_task",
    "reuse_first_call_s",
    "peak_rss_mib",
    "disk_mib",
)
BACKEND_FIELDS = ("add_ms_last10", "open_s", "select_one_ms", "select_batched_ms_per_task")
ONE_TASK = ["sandals", "sneakers", "ankle boots"]
CAPS = (4, 8, 16, 32, None)
OPENS = 5  # fresh processes timing `open_s` (`--opens`)
ROUNDS = 3  # interleaved (SQLite, PostgreSQL) rounds of adds and selections (`--rounds`)


def disk_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def timed_adds(hub, tag: str) -> float:
    """Mean ms of 10 adds: 5 copies of a demo family head (database rows) and 5 MLPs (orbax directories)."""
    from mll_jax import nets

    head = hub.load_model("family-tops")
    family = hub.entry("family-tops")
    times = []
    for i in range(-2, 10):  # the first two are not timed: imports and first-call set-up
        if i == 0:
            times.clear()
        start = time.perf_counter()
        if i % 2 == 0:
            hub.add(
                f"probe-{tag}-{i}",
                head,
                "linear",
                family.config,
                list(family.heads),
                family.input_spec,
                backbone=family.backbone,
            )
        else:
            model = nets.build("mlp", {"hidden": [8]}, 2, seed=abs(i))
            hub.add(f"probe-{tag}-{i}", model, "mlp", {"hidden": [8]}, ["Sandal", "Sneaker"], family.input_spec)
        times.append(time.perf_counter() - start)
    for i in range(-2, 10):
        hub.remove(f"probe-{tag}-{i}")
    return 1000 * statistics.mean(times)


def label_new_model(hub) -> float:
    """Seconds to label one new stand-alone CNN of the demo's CNN recipe, which is then removed."""
    from mll_jax import labeling, nets
    from mll_jax.configs import demo_hub

    model = nets.build("cnn", demo_hub.CNN, 3, seed=0)
    hub.add("probe-cnn", model, "cnn", demo_hub.CNN, ["Sandal", "Sneaker", "Ankle boot"], demo_hub.INPUT_SPEC)
    start = time.perf_counter()
    labeling.label(hub, progress=False)
    seconds = time.perf_counter() - start
    hub.remove("probe-cnn")
    return seconds


def measure(path: Path, batched_tasks: int = 1000) -> dict:
    """Open, select and reuse in this (fresh) process; the figures of one size."""
    import jax

    import mll_jax as mll
    from mll_jax import data, paths
    from mll_jax.experiments.tasks import random_tasks

    paths.enable_compile_cache()
    hub = mll.Hub.open(path)
    experts = len(hub.ids("expert"))
    mll.select(hub, ONE_TASK)  # compiles, and reads the records it needs
    one = []
    for _ in range(5):
        start = time.perf_counter()
        selection = mll.select(hub, ONE_TASK)
        one.append(time.perf_counter() - start)
    tasks = random_tasks(hub, batched_tasks, np.random.default_rng(0))
    mll.select_many(hub, tasks)
    start = time.perf_counter()
    mll.select_many(hub, tasks)
    batched = time.perf_counter() - start
    images = data.load(hub.store_spec.source, "test").images[:1024]
    start = time.perf_counter()
    jax.block_until_ready(mll.reuse(hub, selection)(images))
    reuse_s = time.perf_counter() - start
    return {
        "experts": experts,
        "select_one_ms": 1000 * statistics.median(one),
        "select_batched_ms_per_task": 1000 * batched / len(tasks),
        "reuse_first_call_s": reuse_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "models_in_one_selection": len(selection.models),
        "candidates_per_class": selection.num_candidates,
    }


def grow(path: Path, experts: int) -> float:
    """The hub at `path` (a copy of the demo hub) grown to `experts` experts by `zoo.generate`, labelled; seconds."""
    import mll_jax as mll
    from mll_jax import labeling
    from mll_jax.configs import scale_hub
    from mll_jax.zoo import generate

    start = time.perf_counter()
    base = len(mll.Hub.open(path).ids("expert"))
    hub = generate.build(path, scale_hub.get_config(experts - base))
    labeling.label(hub)
    return time.perf_counter() - start


def demo_hub(work: Path, given: Path | None) -> tuple[Path, float | None]:
    from mll_jax import labeling, zoo

    if given is not None:
        return given, None
    path = work / "demo"  # sizes are measured on copies of it (`hub-<experts>`)
    start = time.perf_counter()
    labeling.label(zoo.build(path))
    return path, time.perf_counter() - start


def exponents(sizes: list[dict]) -> dict:
    """Least-squares slope of log(figure) against log(experts), per figure."""
    out = {}
    x = np.log([s["experts"] for s in sizes])
    for field in FIELDS:
        values = [s.get(field) for s in sizes]
        if len(sizes) >= 2 and all(v is not None and v > 0 for v in values):
            out[field] = float(np.polyfit(x, np.log(values), 1)[0])
    return out


def cap_study(path: Path) -> list[dict]:
    """The development suite on one hub under each cap: mean validation accuracy (node samples) and accuracy on
    the development split (a design study: the test split and the reported suite stay unread)."""
    import mll_jax as mll
    from mll_jax.configs import suite
    from mll_jax.configs.selection import SelectionConfig
    from mll_jax.experiments import evaluation

    hub = mll.Hub.open(path)
    tasks, _ = evaluation.answerable(hub, [list(t) for t in suite.tasks("dev")])
    dev = evaluation.evaluation_data(hub, "dev")
    rows = []
    for cap in CAPS:
        config = SelectionConfig(max_candidates=cap)
        mll.select_many(hub, tasks[:1], config=config)  # compiles the common bucket
        start = time.perf_counter()
        selections = mll.select_many(hub, tasks, config=config)
        seconds = time.perf_counter() - start
        accuracy = []
        for names, sel in zip(tasks, selections):
            _, mask, y = evaluation.task_items(hub, names, dev)
            logits = np.asarray(mll.reuse(hub, sel)(dev.images[mask]))
            accuracy.append(float((logits.argmax(1) == y).mean()))
        rows.append(
            {
                "max_candidates": cap,
                "val_accuracy": statistics.mean(s.val_accuracy for s in selections),
                "dev_accuracy": statistics.mean(accuracy),
                "select_s": seconds,
                "mean_candidates_per_class": statistics.mean(n for s in selections for n in s.num_candidates),
            }
        )
        print(rows[-1], flush=True)
    return rows


def open_seconds(path: Path) -> float:
    """Seconds to `Hub.open` the hub at `path` and list its experts, in this (fresh) process."""
    import mll_jax as mll
    from mll_jax.hub import location

    if (path / location.POINTER).is_file():  # its driver is imported before the clock, as sqlite3 is on both sides
        import psycopg  # noqa: F401
    start = time.perf_counter()
    mll.Hub.open(path).ids("expert")
    return time.perf_counter() - start


def fresh(path: Path, *args: str) -> dict | float:
    """What this script prints with `args` (`--measure` or `--open`) for the hub at `path`, in a new process."""
    done = subprocess.run([sys.executable, __file__, *args, str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_measure(path: Path, batched_tasks: int, opens: int = OPENS) -> dict:
    """`measure` of the hub at `path` in a new process, and `open_s`: the median of `opens` new processes (a
    first query's milliseconds are the noisiest figure here)."""
    row = fresh(path, "--batched-tasks", str(batched_tasks), "--measure")
    return row | {"open_s": statistics.median(fresh(path, "--open") for _ in range(opens))}


def on_postgres(
    path: Path, url: str, batched_tasks: int, opens: int = OPENS, rounds: int = ROUNDS, pooled: str | None = None
) -> dict:
    """The hub at `path`, copied and moved to the empty PostgreSQL database `url`, measured side by side with the
    SQLite original: `rounds` rounds of (SQLite, PostgreSQL) adds and fresh-process selections, and `opens` of
    fresh-process opens, interleaved so that the machine's load falls on both alike; medians per side. With
    `pooled` (the same database through a pooler) a third side reaches the moved hub's rows that way."""
    import mll_jax as mll
    from mll_jax.hub import location

    moved = path.with_name(path.name + "-postgresql")
    shutil.rmtree(moved, ignore_errors=True)
    mll.Hub.open(path).copy(moved)  # through SQLite: a plain copy here would drop this process's locks on it
    start = time.perf_counter()
    location.move(moved, url)
    move_s = time.perf_counter() - start
    sides = {"sqlite": path, "postgresql": moved} | ({"postgresql_pooled": moved} if pooled else {})
    routes = {"postgresql": url, "postgresql_pooled": pooled}
    route = url

    def reached(side: str) -> Path:
        """The side's hub, its rows reached by the side's route (switched by digest-checked `location.reach`)."""
        nonlocal route
        if side in routes and routes[side] != route:
            location.reach(moved, routes[side])
            route = routes[side]
        return sides[side]

    runs: dict[str, dict[str, list[float]]] = {side: collections.defaultdict(list) for side in sides}
    for r in range(rounds):
        for side in sides:
            hub = reached(side)
            runs[side]["add_ms_last10"].append(timed_adds(mll.Hub.open(hub), f"{side}-{r}"))
            measured = fresh(hub, "--batched-tasks", str(batched_tasks), "--measure")
            for field in ("select_one_ms", "select_batched_ms_per_task"):
                runs[side][field].append(measured[field])
    for _ in range(opens):
        for side in sides:
            runs[side]["open_s"].append(fresh(reached(side), "--open"))
    shutil.rmtree(moved)
    medians = {side: {f: statistics.median(v) for f, v in figures.items()} for side, figures in runs.items()}
    ratio = {side: {f: medians[side][f] / medians["sqlite"][f] for f in BACKEND_FIELDS} for side in sides}
    return (
        {"move_s": move_s, "rounds": rounds, "opens": opens}
        | medians
        | {"ratios": ratio["postgresql"], "runs": runs}
        | ({"ratios_pooled": ratio["postgresql_pooled"]} if pooled else {})
    )


def table(sizes: list[dict], exps: dict) -> str:
    head = f"{'figure':28s}" + "".join(f"{s['experts']:>12d}" for s in sizes) + f"{'exponent':>10s}"
    lines = [head]
    for field in FIELDS:
        cells = "".join(f"{s[field]:12.3f}" if s.get(field) is not None else f"{'-':>12s}" for s in sizes)
        exp = f"{exps[field]:10.2f}" if field in exps else f"{'-':>10s}"
        lines.append(f"{field:28s}{cells}{exp}")
    for key, what in (("ratios", "postgresql"), ("ratios_pooled", "postgresql through a pooler")):
        if any(key in s.get("backends", {}) for s in sizes):
            lines.append(f"{what} / sqlite, same hub and work, interleaved (medians):")
            for field in BACKEND_FIELDS:
                cells = "".join(
                    f"{s['backends'][key][field]:12.2f}" if key in s.get("backends", {}) else f"{'-':>12s}"
                    for s in sizes
                )
                lines.append(f"  {field:26s}{cells}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[17, 1000, 10000])
    parser.add_argument("--work", type=Path, default=None, help="where the hubs go (default: the cache)")
    parser.add_argument("--demo", type=Path, default=None, help="a labelled demo hub to start from")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--caps", action="store_true", help="also the candidate cap's cost on the second size")
    parser.add_argument("--reuse", action="store_true", help="measure hubs left by an earlier run (no build_s)")
    parser.add_argument("--batched-tasks", type=int, default=1000, help="random tasks in the batched selection")
    parser.add_argument("--opens", type=int, default=OPENS, help="fresh processes whose median is open_s")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite", help="also on a server")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds of the backend comparison")
    parser.add_argument(
        "--postgres",
        default=None,
        help="a server to make the databases mll_jax_scale_<size> on (postgresql://user@host/postgres; "
        "default: a throw-away local cluster)",
    )
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # the fresh-process parts
    parser.add_argument("--open", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.batched_tasks)))
        return {}
    if args.open is not None:
        print(json.dumps(open_seconds(args.open)))
        return {}
    import jax

    from mll_jax import paths

    paths.enable_compile_cache()
    work = args.work or paths.cache_dir() / "scale"
    work.mkdir(parents=True, exist_ok=True)
    demo, demo_build_s = demo_hub(work, args.demo)
    cluster = server = None
    if args.backend == "postgresql":
        from mll_jax.hub import postgres_local

        cluster = None if args.postgres else postgres_local.LocalCluster(pooler=True)
        server = args.postgres or cluster.admin_url
    sizes = []
    try:  # a failed size still stops the server it started
        for experts in args.sizes:
            import mll_jax as mll

            path, build_s = work / f"hub-{experts}", demo_build_s  # the demo hub itself is never written to
            reused = args.reuse and path.is_dir() and len(mll.Hub.open(path).ids("expert")) == experts
            if not reused:
                shutil.rmtree(path, ignore_errors=True)
                mll.Hub.open(demo).copy(path)
            first = timed_adds(mll.Hub.open(path), "first")  # into the demo hub's copy, before it grows
            if reused:
                build_s = None
            elif experts > len(mll.Hub.open(demo).ids("expert")):
                build_s = grow(path, experts)
            hub = mll.Hub.open(path)
            row = {"experts": len(hub.ids("expert")), "build_s": build_s, "add_ms_first10": first}
            row["add_ms_last10"] = timed_adds(hub, "last")
            row["label_new_model_s"] = label_new_model(hub)
            row |= fresh_measure(path, args.batched_tasks, args.opens)
            row["disk_mib"] = disk_mib(path)
            row["hub"] = str(path)
            if server is not None:
                url = postgres_local.create_database(server, f"mll_jax_scale_{experts}", replace=True)
                pooled = cluster.through_pooler(url) if cluster is not None else None
                row["backends"] = on_postgres(path, url, args.batched_tasks, args.opens, args.rounds, pooled)
            sizes.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    exps = exponents(sizes)
    result = {"device": str(jax.devices()[0].device_kind), "sizes": sizes, "exponents": exps}
    if args.caps and len(sizes) >= 2:
        result["caps"] = cap_study(Path(sizes[1]["hub"]))
    print(table(sizes, exps))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
