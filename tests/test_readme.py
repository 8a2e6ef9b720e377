import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_python_example_runs(hub_path, capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "models used" in out


def test_readme_results_block_is_generated_from_the_committed_json():
    import json

    from mll_jax.experiments import report

    doc = json.loads((README.parent / "docs" / "results.json").read_text())
    block = re.search(re.escape(report.BEGIN) + ".*?" + re.escape(report.END), README.read_text(), re.S).group(0)
    assert block == report.readme_block(doc)
    assert f"{doc['summary']['mll']:.3f}" in block


def test_update_readme_without_a_results_block_says_how_to_fix(tmp_path):
    import pytest

    from mll_jax.experiments import report

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.json").write_text((README.parent / "docs" / "results.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text("# a readme without the block\n")
    with pytest.raises(ValueError, match="has no results block"):
        report.update_readme(readme)
    assert readme.read_text() == "# a readme without the block\n"


def test_readme_own_expert_example_adds_and_labels_a_model(hub_copy):
    import numpy as np

    import mll_jax as mll
    from mll_jax import labeling

    code = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "my-footwear" in b)
    exec(compile(code, str(README), "exec"), {"hub": hub_copy, "np": np, "mll": mll})
    heads = {h.declared: h.concepts for h in labeling.head_labels(hub_copy, "my-footwear")}
    assert "sandal.n.01" in heads["Sandal"] and "boot.n.01" in heads["Ankle boot"]


def test_readme_engine_example_runs(hub, capsys):
    code = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "engine.from_hub" in b)
    scope = {"hub": hub}
    exec(compile(code, str(README), "exec"), scope)
    assert set(scope["probs"]) == set(hub.entries)
    assert scope["probs"]["family-tops"].shape == (len(hub.store), 4)
    assert "shared" in capsys.readouterr().out
