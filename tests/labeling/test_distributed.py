"""Labelling over two processes (jax.distributed, gloo over localhost) equals one process."""

import shutil
import subprocess
import sys

import numpy as np

from mll_jax.hub import Hub
from mll_jax.labeling import distributed


def test_two_processes_label_the_same_bytes_as_one(hub, hub_copy):
    shutil.rmtree(hub_copy.path / "labels")
    cmd = [sys.executable, "-m", "mll_jax", "--hub", str(hub_copy.path), "label", "--processes", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"labelled {len(hub.entries)} model(s)" in run.stdout
    merged = Hub.open(hub_copy.path)
    assert not (merged.path / "labels" / ".parts").exists()
    for model_id in hub.entries:
        ours, reference = merged.labels(model_id), hub.labels(model_id)
        assert ours.keys() == reference.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], reference[key], err_msg=f"{model_id} {key}")
        assert merged.labels_valid(model_id)


def test_groups_are_dealt_to_the_least_loaded_process():
    groups = [["a"], ["b", "c", "d"], ["e", "f"], ["g"]]
    shares = distributed.share(groups, 2)
    assert sorted(sum(map(len, s)) for s in shares) == [3, 4]
    assert sorted(m for s in shares for g in s for m in g) == list("abcdefg")
