"""Stored selection programs: a new process loads them, a damaged or stale one is rebuilt, answers do not
depend on the bucket policy; the compile cache is on by default."""

import json
import os
import subprocess
import sys

import pytest

import mll_jax as mll
from mll_jax import paths
from mll_jax.configs import suite
from mll_jax.configs.selection import SelectionConfig
from mll_jax.selection import programs

ONE = ["sandals", "sneakers", "ankle boots"]
EVERY_CLASS = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def choices(selection) -> list:
    return [[(c.model, c.heads, round(c.weight, 6)) for c in cs] for cs in selection.choices]


def stored() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in programs.store_dir().glob("solve_chunk-*.jaxprog")}


def loaded_as_stored(hub, names: list[str]) -> bool:
    """A new process's view: the stored programs serve `names` without being written again."""
    programs.forget()
    stamps = {p.name: p.stat().st_mtime_ns for p in programs.store_dir().glob("solve_chunk-*.jaxprog")}
    mll.select(hub, names)
    return {p.name: p.stat().st_mtime_ns for p in programs.store_dir().glob("solve_chunk-*.jaxprog")} == stamps


def test_a_damaged_or_stale_stored_program_is_rebuilt_not_run(hub, own_program_store):
    for path in programs.store_dir().glob("solve_chunk-*.jaxprog"):
        path.unlink()
    programs.forget()
    before = mll.select(hub, ONE)
    files = stored()
    assert len(files) == 1, "one task, one stored program"
    for damage in (
        lambda raw: raw[: len(raw) // 2],  # cut short: the checksum does not match
        lambda raw: raw[:-100] + bytes(100),  # zeroed tail
        lambda raw: b"not a program",
    ):
        for name, raw in files.items():
            (programs.store_dir() / name).write_bytes(damage(raw))
        programs.forget()
        again = mll.select(hub, ONE)
        assert choices(again) == choices(before) and again.val_accuracy == pytest.approx(before.val_accuracy)
        rebuilt = stored()
        assert rebuilt.keys() == files.keys() and all(rebuilt[n] != damage(files[n]) for n in files)
        assert loaded_as_stored(hub, ONE), "a damaged program is rebuilt and stored sound"
    # stale: a sound program of another bucket under this one's name
    mll.select(hub, ONE, config=SelectionConfig(class_buckets=(8,)))
    foreign = [raw for name, raw in stored().items() if name not in files]
    assert len(foreign) == 1
    for name in files:
        (programs.store_dir() / name).write_bytes(foreign[0])
    programs.forget()
    assert choices(mll.select(hub, ONE)) == choices(before)
    assert all(stored()[n] != foreign[0] for n in files), "a program for other shapes is not run: it is rebuilt"
    assert loaded_as_stored(hub, ONE)


def test_answers_do_not_depend_on_the_bucket_policy(hub):
    # tasks of 3 classes, padded to 4 by default: an exact bucket for them is one program more
    tasks = [list(t) for t in suite.DEMO_TASKS if len(t) == 3 and "kicks" not in t and "puffer jacket" not in t][:8]
    padded = mll.select_many(hub, tasks)
    exact = SelectionConfig(class_buckets=(3,), max_candidates=None)
    for a, b in zip(padded, mll.select_many(hub, tasks, config=exact)):
        assert choices(a) == choices(b), a.classes
        assert a.val_accuracy == pytest.approx(b.val_accuracy, abs=1e-4)


def test_a_task_alone_gets_the_answer_it_gets_among_others(hub):
    """Alone in its class bucket a task runs in a chunk of one (less padding), among others in the default chunk."""
    tasks = [ONE, ["shirt", "pullover"], ["t-shirt", "trousers", "dress", "coat", "sandal"]]  # buckets 4, 4, 8
    together = mll.select_many(hub, tasks, chunk=4)
    for names, among in zip(tasks, together):
        alone = mll.select(hub, names)
        assert choices(alone) == choices(among), names
        assert alone.val_accuracy == pytest.approx(among.val_accuracy, abs=1e-6)


def run_fresh(code: str, **env) -> str:
    """`code`'s last line of output in a new process, without the JAX_* settings this one runs with."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**inherited, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_a_new_process_loads_stored_programs_and_traces_none(hub_path):
    subprocess.run([sys.executable, "-m", "mll_jax", "--hub", str(hub_path), "warmup"], check=True, timeout=900)
    before = {p.name: p.stat().st_mtime_ns for p in programs.store_dir().iterdir()}
    code = f"""
import json, mll_jax as mll
from mll_jax import exported
from mll_jax.selection import programs
hub = mll.Hub.open({str(hub_path)!r})
mll.select_many(hub, [{ONE!r}, ["shirt", "pullover"], ["t-shirt", "trousers", "dress", "coat", "sandal"]])
mll.select(hub, {EVERY_CLASS!r})  # a 10-class task: the bucket of 16
print(programs.count(programs.solve_chunk), exported.traced())
"""
    assert run_fresh(code) == "3 0", "three buckets, each program loaded from the store, none traced"
    # other test workers may add programs of their own meanwhile; none that was stored is written again
    after = {p.name: p.stat().st_mtime_ns for p in programs.store_dir().iterdir()}
    assert {name: after.get(name) for name in before} == before, "a stored program was traced and written again"


def test_warmup_prepares_the_programs_of_the_hubs_own_settings(hub_copy, own_program_store):
    """A hub that pools (as the open world's do): `mll-jax warmup` prepares its pool programs, so a new process's
    10-class task traces nothing."""
    for path in own_program_store.glob("solve_chunk-*.jaxprog"):
        path.unlink()
    hub_copy.set_selection_config(SelectionConfig(solver=mll.SolverConfig(combination="pool")))
    command = [sys.executable, "-m", "mll_jax", "--hub", str(hub_copy.path), "warmup"]
    subprocess.run(command, check=True, timeout=900, capture_output=True)
    code = f"""
import mll_jax as mll
from mll_jax import exported
hub = mll.Hub.open({str(hub_copy.path)!r})
selection = mll.select(hub, {EVERY_CLASS!r})
print(sum(map(len, selection.choices)) > 10, exported.traced())
"""
    assert run_fresh(code) == "True 0", "the pool's program was loaded from the store, none traced"


def test_a_lone_query_uses_the_program_it_prefetched_and_never_imports_flax(hub, hub_path):
    """A new process's `select` starts loading its bucket's program while it matches names; the call takes that
    program (none left pending, one loaded) and answers as this process does; selection needs no Flax."""
    mll.select(hub, ONE)  # stores the bucket's program if no other test has
    code = f"""
import json, sys, mll_jax as mll
from mll_jax.selection import programs
hub = mll.Hub.open({str(hub_path)!r})
selection = mll.select(hub, {ONE!r})
print(json.dumps([programs.count(programs.solve_chunk), programs.pending(), "flax" in sys.modules,
                  [[(c.model, c.heads, round(c.weight, 6)) for c in cs] for cs in selection.choices]]))
"""
    count, waiting, flax, answer = json.loads(run_fresh(code))
    assert (count, waiting, flax) == (1, 0, False)
    assert [[tuple(c) for c in cs] for cs in answer] == choices(mll.select(hub, ONE))


def test_importing_mll_jax_changes_nothing_and_its_compiling_stages_turn_the_compile_cache_on(tmp_path):
    plain = (
        "import os; before = dict(os.environ); import mll_jax, jax; "
        "print(jax.config.jax_compilation_cache_dir, dict(os.environ) == before)"
    )
    assert run_fresh(plain) == "None True"  # no cache set, no environment variable written
    for stage in ("mll_jax.selection", "mll_jax.engine.runner"):
        code = f"import jax, {stage}; print(jax.config.jax_compilation_cache_dir)"
        assert run_fresh(code) == str(paths.cache_dir() / "jax"), stage
        assert run_fresh(code, MLL_JAX_NO_COMPILE_CACHE="1") == "None"
        assert run_fresh(code, JAX_COMPILATION_CACHE_DIR=str(tmp_path)) == str(tmp_path)  # the user's own stays
