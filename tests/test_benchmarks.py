"""The benchmarks compare like with like: every ratio's sides at the same batch size and rows per dispatch, timed
interleaved, every repeat kept; the report publishes only such ratios."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mll_jax import engine, nets
from mll_jax.experiments import report

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
FIELDS = ("batch", "torch_batch", "plain_rows_per_dispatch", "engine_rows_per_dispatch")


def _load(name: str):
    # The benchmarks are scripts, not a package; they import each other from their folder, as when run.
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tp = _load("throughput")
common = _load("common")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, *tp.SPEC["shape"]), dtype=np.uint8)


@pytest.fixture(scope="module")
def rows(images) -> list[dict]:
    """A tiny real run: one standalone expert and one head on a shared backbone, batch 32, one repeat, no torch."""
    return tp.throughput([2], [32], images, repeats=1, torch_limit=0)


def _assert_like_for_like(row: dict) -> None:
    assert all(k in row for k in FIELDS), row
    if "engine_vs_plain" in row:
        assert row["plain_rows_per_dispatch"] == row["engine_rows_per_dispatch"]
    if "engine_vs_torch" in row:
        assert row["torch_batch"] == row["batch"]
        assert row["torch_rows_per_dispatch"] == row["engine_rows_per_dispatch"]
    assert all(len(times) == row["repeats"] for times in row["times_s"].values())


@pytest.mark.parametrize("rows_in, batch, chunk_rows", [(64, 32, 64), (100, 8, 48), (1000, 32, 4096), (5, 4, 4)])
def test_plain_loop_cuts_images_into_the_engines_dispatches(rows_in, batch, chunk_rows):
    model = nets.build("mlp", {"hidden": [8]}, 2, seed=0)
    eng = engine.Engine([engine.Member("m", model, tp.SPEC)], batch_size=batch, chunk_rows=chunk_rows, pad_heads=False)
    images = np.zeros((rows_in, *tp.SPEC["shape"]), np.uint8)
    pieces = [take for _, take in eng.pieces(images)]
    assert tp.dispatches(rows_in, eng.batch_size, eng.chunks) == pieces


def test_every_ratio_compares_equal_batches_and_dispatches(rows, images):
    assert [(r["batch"], r["engine_rows_per_dispatch"]) for r in rows] == [(32, 32), (32, len(images))]
    for row in rows:
        _assert_like_for_like(row)
        assert row["torch_batch"] is None and "engine_vs_torch" not in row
        assert row["max_abs_diff_plain"] < 1e-5


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_balanced_orders_put_every_side_right_after_every_other_equally_often(n):
    from collections import Counter

    orders = common.balanced_orders(n)
    assert all(sorted(o) == list(range(n)) for o in orders) and len(orders) == (n if n % 2 == 0 else 2 * n)
    pairs = Counter((a, b) for o in orders for a, b in zip(o, o[1:]))
    assert set(pairs) == {(a, b) for a in range(n) for b in range(n) if a != b} and len(set(pairs.values())) == 1


def test_interleaved_runs_every_side_each_round_in_balanced_order_and_keeps_every_repeat():
    calls = []
    sides = {name: (lambda name=name: calls.append(name) or name) for name in "abc"}
    times, outputs = tp.interleaved(sides, 6)
    assert "".join(calls) == "abc" + "".join("".join("abc"[k] for k in o) for o in common.balanced_orders(3))
    assert outputs == {"a": "a", "b": "b", "c": "c"} and [len(t) for t in times.values()] == [6, 6, 6]


def test_torch_ratio_only_at_the_engines_batch_and_dispatch(images):
    pytest.importorskip("torch")
    rows = tp.throughput([1], [16], images, repeats=1, torch_limit=1)
    reference, *like = rows
    assert reference["reference"] and "not like for like" in reference["label"]
    assert reference["torch_batch"] == tp.REFERENCE_BATCH and reference["batch"] is None
    assert not any(k.startswith("engine_vs") for k in reference)
    assert [("engine_vs_torch" in r, r["engine_rows_per_dispatch"]) for r in like] == [(True, 16), (False, 64)]
    for row in like:
        _assert_like_for_like(row)
    assert like[0]["max_abs_diff_torch"] < 1e-5


def test_equal_work_rows_do_the_same_flops_on_every_side_and_include_torch_func(images):
    pytest.importorskip("torch")
    rows = tp.throughput([2], [16], images, repeats=1, torch_limit=2, table="equal work")
    reference, *like = rows
    assert reference["table"] == "equal work" and reference["reference"]
    for row in like:
        _assert_like_for_like(row)
        flops = row["flops_per_image"]
        assert row["table"] == "equal work" and flops["engine"] == flops["plain"] == flops["torch"] > 0
    one_batch, own = like
    assert one_batch["max_abs_diff_torch_func"] < 1e-5 and one_batch["max_abs_diff_torch"] < 1e-5
    assert "engine_vs_torch_func" not in own, "torch runs one forward per batch: no ratio at another dispatch"
    hub_row = tp.throughput([4], [16], images, repeats=1, torch_limit=0)[0]  # two heads on one backbone
    assert hub_row["flops_per_image"]["engine"] < hub_row["flops_per_image"]["plain"], "a backbone run once"
    assert "Equal work:" in report.throughput_section({"backend": "cpu:cpu", "matmul_gflop_per_s": 1.0, "rows": rows})


def test_report_publishes_only_like_for_like_ratios(rows):
    doc = {"backend": "cpu:cpu", "matmul_gflop_per_s": 1.0, "rows": rows}
    text = report.throughput_section(doc)
    assert "engine rows/dispatch" in text and "plain rows/dispatch" in text
    assert f"{rows[0]['engine_vs_plain']:.3f}" in text
    unmatched = dict(rows[0], plain_rows_per_dispatch=rows[0]["engine_rows_per_dispatch"] * 2)
    assert f"{unmatched['engine_vs_plain']:.3f}" not in report.throughput_section(dict(doc, rows=[unmatched]))
    stale = {"experts": 1, "batch": 32, "engine_vs_plain": 2.0}  # a row without the like-for-like fields
    assert "not shown" in report.throughput_section(dict(doc, rows=[stale]))
    assert "not shown" in report.chco_section({"throughput": [{"tasks": 10, "speedup": 3.0}]})


def test_the_device_script_names_the_device_in_every_file(hub_path, tmp_path):
    device = _load("device")
    with pytest.raises(SystemExit):  # a CPU is no accelerator: figures from it are refused
        device.main(["--parts", "throughput", "--out", str(tmp_path), "--hub", str(hub_path)])
    (written,) = device.main(["--smoke", "--parts", "throughput", "--out", str(tmp_path), "--hub", str(hub_path)])
    record = json.loads(written.read_text())
    assert written.name == "cpu-throughput-smoke.json"
    assert record["status"] == "ok" and record["smoke"] is True
    assert record["device"] == record["result"]["backend"].split(":", 1)[1] == "cpu"
    assert record["result"]["rows"] and all(row["experts"] == 1 for row in record["result"]["rows"])


def test_open_world_labels_measures_the_rule_on_the_development_split(hub, tmp_path):
    """The CI-sized run is the full one (17 experts, 4,716 development images): what it reports holds together,
    and reading the declared names for a model's domain keeps the rule's recall at a far higher precision."""
    labels = _load("open_world_labels")
    result = labels.main(["--hub", str(hub.path), "--json", str(tmp_path / "labels.json")])
    assert json.loads((tmp_path / "labels.json").read_text())["split"] == "development"
    assert [r["model"] for r in result["rows"]] == hub.ids("expert")
    assert all(r["fires_inside"] <= r["heads"] for r in result["rows"])
    plain, region = result["rules"]["r >= 0.5"], result["rules"]["r >= 0.5, declared region"]
    assert region["labels"] < plain["labels"] and region["recall"] <= plain["recall"]
    assert region["precision"] > 10 * plain["precision"], (plain, region)


def test_pretrained_rows_time_a_real_imagenet_model_on_every_side_alike():
    """EfficientNet-Lite0 from its wheel: the engine, the plain loop and PyTorch at one batch size and dtype, one
    batch a dispatch, the same probabilities (the converter's parity, through each side's own path)."""
    pytest.importorskip("torch")
    (row,) = tp.pretrained(["efficientnet-lite0"], [8], ["float32"], repeats=1, peaks={"float32": 1e12})
    assert row["model"] == "efficientnet-lite0" and row["rows_per_dispatch"] == row["batch"] == 8
    assert row["images"] == tp.PRETRAINED_IMAGES and all(len(t) == 1 for t in row["times_s"].values())
    assert row["max_abs_diff_torch"] < 1e-4 and row["top1_agreement_torch"] == 1.0
    assert 0.78e9 < row["flops_per_image"] < 0.84e9 and 0 < row["roofline_fraction"] < 1
    doc = {"backend": "cpu:cpu", "matmul_gflop_per_s": {"float32": 1000.0}, "rows": [row]}
    text = "\n".join(report.pretrained_section(doc))
    assert "Pretrained ImageNet models" in text and f"{row['engine_vs_torch']:.2f}" in text
