"""Labelling over several processes with JAX's multi-controller runtime (`jax.distributed`; method.md §5).

Every process opens the same hub, takes its share of the engine groups, and writes
the store probabilities of its models to `labels/.parts/<process>.npz`. After a
barrier the coordinator (process 0) turns every part into label records and saves
them; the others wait at a second barrier. Groups are the same as in a
one-process run, so the merged labels are the same bytes. On CPU the collectives
run over gloo, so several local processes can stand in for several hosts.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from mll_jax.configs.engine import BATCH_SIZE
from mll_jax.hub import Hub
from mll_jax.labeling import labels as labeling

__all__ = ["label", "label_locally", "share"]

log = logging.getLogger(__name__)


def share(groups: list[list[str]], num_processes: int) -> list[list[list[str]]]:
    """Groups dealt to processes, largest first, each to the least loaded (models as the load)."""
    shares: list[list[list[str]]] = [[] for _ in range(num_processes)]
    for group in sorted(groups, key=len, reverse=True):
        min(shares, key=lambda s: sum(map(len, s))).append(group)
    return shares


def _parts(hub: Hub) -> Path:
    return hub.path / "labels" / ".parts"


def _write_part(hub: Hub, process_id: int, results: dict) -> None:
    """One process's results: store probabilities per model, or the problem that stopped it."""
    folder = _parts(hub)
    folder.mkdir(parents=True, exist_ok=True)
    ids = sorted(results)
    arrays = {f"probs{n}": results[i] for n, i in enumerate(ids) if not isinstance(results[i], str)}
    problems = [results[i] if isinstance(results[i], str) else "" for i in ids]
    tmp = folder / f".{process_id}.tmp.npz"
    np.savez(tmp, ids=np.array(ids, dtype=str), problems=np.array(problems, dtype=str), **arrays)
    os.replace(tmp, folder / f"{process_id}.npz")


def _read_parts(hub: Hub, num_processes: int) -> dict:
    merged = {}
    for process_id in range(num_processes):
        with np.load(_parts(hub) / f"{process_id}.npz", allow_pickle=False) as part:
            for n, (model_id, problem) in enumerate(zip(part["ids"], part["problems"])):
                merged[str(model_id)] = str(problem) if problem else part[f"probs{n}"]
    return merged


def label(
    hub: Hub,
    coordinator: str,
    num_processes: int,
    process_id: int,
    force: bool = False,
    batch_size: int = BATCH_SIZE,
    dtype: str = "float32",
    progress: bool = True,
) -> list[str]:
    """This process's part of labelling `hub`; returns the models labelled (by all processes)."""
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    try:
        pending = labeling.todo(hub, None, force)
        mine = share(labeling.groups(hub, pending), num_processes)[process_id]
        log.info("process %d of %d: groups %s", process_id, num_processes, mine)
        results = {}
        for group in mine:
            results |= {
                i: r for i, r in labeling.compute(hub, group, batch_size, dtype, progress).items() if i in pending
            }
        _write_part(hub, process_id, results)
        multihost_utils.sync_global_devices("mll_jax: label parts written")
        if process_id == 0:
            merged = _read_parts(hub, num_processes)
            for model_id in pending:
                labeling.save(hub, model_id, merged[model_id])
            shutil.rmtree(_parts(hub))
        multihost_utils.sync_global_devices("mll_jax: labels merged")
    finally:
        jax.distributed.shutdown()
    return pending


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def label_locally(hub: Hub, num_processes: int, force: bool = False, dtype: str = "float32") -> None:
    """Label `hub` with `num_processes` processes on this machine (what several hosts would do)."""
    coordinator = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "mll_jax", "--hub", str(hub.path), "label", "--dtype", dtype]
    command += ["--coordinator", coordinator, "--num-processes", str(num_processes)] + (["--force"] if force else [])
    procs = [subprocess.Popen([*command, "--process-id", str(i)]) for i in range(num_processes)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"labelling processes exited with codes {codes}; run with -v to see each one's log")
