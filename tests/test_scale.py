"""The scale benchmark, small: the demo hub and a generated hub of 512 experts, measured in one run.

A test of correctness (every figure there, hubs of the sizes asked for, selection bounded by the cap),
not of speed: speed is read from the benchmark's own output.
"""

import json

import pytest
from exact_cap import cap_mismatches
from test_benchmarks import _load  # the benchmarks are scripts: one loader for them

import mll_jax as mll
from mll_jax.configs import suite
from mll_jax.configs.selection import SelectionConfig

scale = _load("scale")


@pytest.mark.slow
def test_scale_benchmark_on_the_demo_hub_and_512_experts(hub_path, tmp_path):
    demo = mll.Hub.open(hub_path).copy(tmp_path / "demo").path
    out = tmp_path / "scale.json"
    args = ["--sizes", "17", "512", "--demo", str(demo), "--work", str(tmp_path), "--json", str(out)]
    result = scale.main([*args, "--batched-tasks", "100", "--opens", "1"])
    assert json.loads(out.read_text())["sizes"] == json.loads(json.dumps(result["sizes"]))
    small, large = result["sizes"]
    assert (small["experts"], large["experts"]) == (17, 512)
    for row in (small, large):
        assert all(row[field] is not None and row[field] > 0 for field in scale.FIELDS if field != "build_s")
        assert max(row["candidates_per_class"]) <= SelectionConfig().max_candidates
    assert large["build_s"] > 0 and set(result["exponents"]) >= set(scale.FIELDS) - {"build_s"}
    grown = mll.Hub.open(large["hub"])
    assert len(grown.ids("expert")) == 512 and not grown.unlabelled()
    assert not [i for i in grown.entries if i.startswith("probe-")], "the benchmark's probes are removed"
    # the capped lookup's shortest read still keeps what a full read ranks best: here the read must grow
    mismatches, trimmed = cap_mismatches(grown, suite.DEV_TASKS, SelectionConfig().max_candidates, fetch_factor=1)
    assert mismatches == [] and trimmed >= 10
    # the 3-class task has more covering experts than the cap in the big hub, and still one program's shape
    assert sum(large["candidates_per_class"]) > sum(small["candidates_per_class"])
