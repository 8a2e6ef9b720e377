"""The package's structure: stages import only the stages below them, no import cycles, registries refuse twins."""

import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest
from flax import nnx

from mll_jax import converters, nets


def test_no_import_cycle():
    graph = grimp.build_graph("mll_jax")
    edges = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    assert list(nx.simple_cycles(edges)) == []


def test_the_layers_contract_holds():
    lint_imports = Path(sys.executable).parent / "lint-imports"  # the console script beside this Python
    out = subprocess.run([str(lint_imports)], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_a_name_registered_twice_is_an_error():
    with pytest.raises(ValueError, match="'mlp' is already registered"):
        nets.register("mlp")(type("Other", (nnx.Module,), {}))
    with pytest.raises(ValueError, match="'torch-sequential' is already registered"):
        converters.register("torch-sequential")(lambda tensors, input_spec: None)
    assert nets.ARCHITECTURES["mlp"].__name__ == "MLP"


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run([sys.executable, "-m", "mll_jax", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: mll-jax" in out.stdout
