import json
import os
import subprocess
import sys

import pytest

from mll_jax.configs import suite
from mll_jax.experiments import demo, report


@pytest.mark.slow
def test_demo_end_to_end(hub_path, tmp_path):
    out = tmp_path / "demo.json"
    png = tmp_path / "demo.png"
    # 8 of the 31 tasks, spread over the suite, keep CI short; `make demo` runs them all
    cmd = [sys.executable, "-m", "mll_jax", "--hub", str(hub_path), "demo", "--tasks", "8"]
    cmd += ["--json", str(out), "--plot", str(png)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mean over" in result.stdout
    doc = json.loads(out.read_text())
    assert set(doc["summary"]) == set(demo.METHODS)
    assert [tuple(t["classes"]) for t in doc["tasks"]] == list(suite.spread(suite.DEMO_TASKS, 8))
    for task in doc["tasks"]:
        assert 2 <= len(task["classes"]) <= 6
        assert all(0.0 <= a <= 1.0 for a in task["accuracy"].values())
        assert task["selection"]["classes"] == task["classes"]
    summary = doc["summary"]
    assert summary["mll"] > summary["random"] and summary["mll"] > summary["f1_topk"]
    # The aligned patch alone comes within a few tenths of a point of MLL on these tasks (0.954 against
    # 0.956 when last run). MLL may pick it for any class, so it must not fall behind it beyond selection noise.
    assert summary["mll"] >= summary["patch_only"] - 0.005
    # `declared` ensembles every declared expert with the text-aligned general model; MLL picks one head per class
    assert summary["mll"] >= summary["declared"] - 0.01
    assert summary["mll"] >= 0.9 * summary["oracle"]
    assert {"hub", "label", "select", "reuse", "total"} <= set(doc["seconds"])
    assert {(m["model"], m["head"]) for m in doc["mislabelled"]} >= {("swapped-cnn", 0), ("swapped-cnn", 1)}
    assert png.stat().st_size > 10_000

    # the report and the README block come from that JSON
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{report.BEGIN}\nold\n{report.END}\n\nafter\n")
    cmd = [
        sys.executable,
        "-m",
        "mll_jax",
        "report",
        "--results",
        str(tmp_path),
        "--out",
        str(tmp_path / "r" / "report.md"),
        "--readme",
        str(readme),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert f"| {summary['mll']:.3f} |" in text and "![accuracy](demo.png)" in text and "Not run" in text
    assert (tmp_path / "r" / "demo.png").is_file()
    updated = readme.read_text()
    assert "old" not in updated and updated.endswith("after\n") and f"{summary['oracle']:.3f}" in updated
    assert json.loads((tmp_path / "docs" / "results.json").read_text())["summary"] == summary


def test_a_spread_of_the_suite_is_checked():
    assert suite.spread(suite.DEMO_TASKS, None) == suite.DEMO_TASKS
    assert suite.spread(suite.DEMO_TASKS, 2) == (suite.DEMO_TASKS[0], suite.DEMO_TASKS[-1])
    with pytest.raises(ValueError, match="ask for 1 to 31"):
        suite.spread(suite.DEMO_TASKS, 0)
