"""Faults, crashes, concurrency and bad input: nothing stored is lost or corrupted."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax.numpy as jnp
import numpy as np
import pytest

import mll_jax as mll
from mll_jax import cli, labeling, nets
from mll_jax.hub import Hub, checkpoint
from mll_jax.labeling import verify

CLI = [sys.executable, "-m", "mll_jax"]


def _checkpoint_file(hub: Hub, model_id: str):
    return next(p for p in (hub.path / "models" / model_id).rglob("*") if p.is_file() and p.stat().st_size > 1000)


def _snapshot(hub: Hub, ids) -> dict:
    return {
        p: p.stat().st_mtime_ns
        for i in ids
        for p in [*(hub.path / "models" / i).rglob("*"), hub.path / "labels" / f"{i}.npz"]
        if p.is_file()
    }


def test_killed_labelling_resumes_and_equals_an_uninterrupted_run(hub, hub_copy):
    shutil.rmtree(hub_copy.path / "labels")
    total = len(hub_copy.entries)
    proc = subprocess.Popen(
        [*CLI, "--hub", str(hub_copy.path), "label"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((hub_copy.path / "labels").glob("[!.]*.npz"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.stem for p in (hub_copy.path / "labels").glob("[!.]*.npz")}
    assert 2 <= len(done) < total, "the kill should land mid-run"
    resumed = Hub.open(hub_copy.path)
    again = labeling.label(resumed)
    # the unfinished models, plus at most the one whose registry update the kill interrupted
    assert set(resumed.entries) - done <= set(again) and len(set(again) & done) <= 1
    for model_id in resumed.entries:
        ours, reference = resumed.labels(model_id), hub.labels(model_id)
        assert ours.keys() == reference.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], reference[key])
    leftovers = {f.kind for f in verify.verify(resumed)}
    assert leftovers <= {"temporary file"}


def test_two_processes_adding_models_at_once(hub_copy):
    script = textwrap.dedent(
        """
        import sys
        from mll_jax import nets
        from mll_jax.hub import Hub
        hub = Hub.open(sys.argv[1])
        for i in range(3):
            model = nets.build("mlp", {"hidden": [8]}, 2, seed=i)
            spec = {"mean": 0.0, "std": 1.0}
            hub.add(f"{sys.argv[2]}-{i}", model, "mlp", {"hidden": [8]}, ["Sandal", "Sneaker"], spec)
        """
    )
    before = set(hub_copy.entries)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(hub_copy.path), name]) for name in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    added = set(Hub.open(hub_copy.path).entries) - before
    assert added == {f"{n}-{i}" for n in "ab" for i in range(3)}
    faults = verify.verify(Hub.open(hub_copy.path))
    assert {(f.kind, f.model) for f in faults} == {("unlabelled", m) for m in added}


def _add_broken(hub: Hub) -> None:
    nan = nets.build("mlp", {"hidden": [8]}, 2)
    nan.head.bias[...] = jnp.full(2, jnp.nan)
    hub.add("nan-mlp", nan, "mlp", {"hidden": [8]}, ["Sandal", "Sneaker"], {"mean": 0.0, "std": 1.0})
    constant = nets.build("mlp", {"hidden": [8]}, 2)
    constant.head.kernel[...] = jnp.zeros((8, 2))
    hub.add("constant-mlp", constant, "mlp", {"hidden": [8]}, ["Sandal", "Sneaker"], {"mean": 0.0, "std": 1.0})
    hub.add("wrong-heads", nets.build("mlp", {"hidden": [8]}, 2), "mlp", {"hidden": [8]}, ["a", "b"], {})
    wrong = dataclasses.replace(hub.entry("wrong-heads"), heads=("Sandal", "Sneaker", "Ankle boot"))  # it has 2
    hub.replace_entry(wrong)


def test_bad_experts_are_excluded_with_a_reason(hub_copy):
    _add_broken(hub_copy)
    labeling.label(hub_copy)
    assert "NaN" in labeling.exclusion(hub_copy, "nan-mlp")
    assert "same probabilities" in labeling.exclusion(hub_copy, "constant-mlp")
    assert "does not load" in labeling.exclusion(hub_copy, "wrong-heads")
    sel = mll.select(hub_copy, ["sandal", "sneakers"])
    assert {"nan-mlp", "constant-mlp", "wrong-heads"} <= set(sel.excluded)
    assert not {"nan-mlp", "constant-mlp", "wrong-heads"} & set(sel.models)
    faults = verify.verify(hub_copy)
    assert {(f.kind, f.model) for f in faults} == {
        ("bad expert", "nan-mlp"),
        ("bad expert", "constant-mlp"),
        ("corrupt checkpoint", "wrong-heads"),
    }


def test_verify_finds_every_injected_fault_and_repair_touches_only_those(hub_copy):
    path = hub_copy.path
    healthy = [i for i in hub_copy.entries if i not in ("tops-mlp", "casual-cnn", "bottoms-mlp")]
    before = _snapshot(hub_copy, healthy)
    state = _checkpoint_file(hub_copy, "tops-mlp")
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # truncated checkpoint
    record = path / "labels" / "casual-cnn.npz"
    raw = bytearray(record.read_bytes())
    raw[-100] ^= 0xFF
    record.write_bytes(bytes(raw))  # corrupt label record
    shutil.rmtree(path / "models" / "bottoms-mlp")  # missing checkpoint
    shutil.copytree(path / "models" / "footwear-mlp", path / "models" / "stray")  # orphan checkpoint
    shutil.copy(path / "labels" / "footwear-mlp.npz", path / "labels" / "stray-labels.npz")  # orphan labels
    (path / "labels" / ".killed.tmp.npz").write_bytes(b"half")  # a writer's leftover
    found = {(f.kind, f.model) for f in verify.verify(Hub.open(path))}
    assert found == {
        ("corrupt checkpoint", "tops-mlp"),
        ("corrupt labels", "casual-cnn"),
        ("missing checkpoint", "bottoms-mlp"),
        ("orphan checkpoint", "stray"),
        ("orphan labels", "stray-labels"),
        ("temporary file", None),
    }
    result = subprocess.run([*CLI, "--hub", str(path), "hub", "verify"], capture_output=True, text=True)
    assert result.returncode == 2 and "6 fault(s)" in result.stdout
    result = subprocess.run([*CLI, "--hub", str(path), "hub", "verify", "--repair"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    repaired = Hub.open(path)
    assert verify.verify(repaired) == []
    assert "tops-mlp" not in repaired.entries and "bottoms-mlp" not in repaired.entries
    assert repaired.labels_valid("casual-cnn")
    assert _snapshot(repaired, healthy) == before


def test_corrupt_checkpoint_is_a_clear_error(hub_copy):
    state = next(
        p for p in (hub_copy.path / "models" / "footwear-cnn").rglob("*") if p.is_file() and p.stat().st_size > 1000
    )
    state.write_bytes(b"\0" * state.stat().st_size)
    with pytest.raises(ValueError, match="footwear-cnn"):
        hub_copy.load_model("footwear-cnn")


def test_hub_path_that_is_a_file(tmp_path):
    (tmp_path / "hub").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        Hub.open(tmp_path / "hub")


def test_no_write_permission(hub_copy, monkeypatch, capsys):
    # Tests run as root, who may write anywhere; the OS's answer is what we replace here.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    registry = hub_copy.dump()
    records = {p: p.read_bytes() for p in (hub_copy.path / "labels").iterdir()}
    code = cli.main(["--hub", str(hub_copy.path), "label", "--force", "footwear-mlp"])
    assert code == 2 and "no write permission" in capsys.readouterr().err
    assert hub_copy.dump() == registry
    assert {p: p.read_bytes() for p in (hub_copy.path / "labels").iterdir()} == records


def test_safetensors_with_missing_or_extra_tensor(tmp_path):
    from safetensors.numpy import save_file

    model = nets.build("mlp", {"hidden": [8]}, 2)
    tensors = checkpoint.flat_params(model)
    save_file(tensors, str(tmp_path / "ok.safetensors"))
    loaded = checkpoint.load_safetensors(tmp_path / "ok.safetensors", nets.abstract("mlp", {"hidden": [8]}, 2))
    x = jnp.ones((1, 28, 28, 1))
    np.testing.assert_array_equal(loaded(x), model(x))
    missing = dict(tensors)
    del missing["head.bias"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="missing tensor head.bias"):
        checkpoint.load_safetensors(tmp_path / "missing.safetensors", nets.abstract("mlp", {"hidden": [8]}, 2))
    save_file({**tensors, "head.extra": np.zeros(2, np.float32)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match="unexpected tensor head.extra"):
        checkpoint.load_safetensors(tmp_path / "extra.safetensors", nets.abstract("mlp", {"hidden": [8]}, 2))
    save_file({**tensors, "head.bias": np.zeros(3, np.float32)}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ValueError, match=r"tensor head.bias has shape \(3,\)"):
        checkpoint.load_safetensors(tmp_path / "shape.safetensors", nets.abstract("mlp", {"hidden": [8]}, 2))
