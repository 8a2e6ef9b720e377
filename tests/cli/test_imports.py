"""The command line imports what a command needs when it runs it (issue 18: its cold start).

Each check runs in a fresh interpreter, since this one has imported everything already.
"""

import subprocess
import sys

import pytest

# Modules the name-matching path must never pull in: nltk's `__init__` imports scipy through
# `nltk.collocations`, and jax waits for a command that computes.
NEVER_FOR_MATCHING = ("scipy", "nltk", "nltk.collocations", "jax", "flax", "orbax.checkpoint", "torch")


def imported_after(code: str) -> set[str]:
    """The modules in sys.modules after a fresh interpreter runs `code`."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_cli_and_wordnet_matching_import_no_scipy_nltk_or_jax():
    modules = imported_after(
        "import mll_jax.cli.main\n"
        "from mll_jax.concepts import sdag, task\n"
        "from mll_jax.data import store\n"
        "graph = sdag.build(store.load())  # WordNet's hypernym paths, lemmas and glosses\n"
        "# lemmas, WordNet morphology ('sneakers'), climbing to a concept ('slacks')\n"
        "classes = task.resolve(graph, ['sandals', 'sneakers', 'ankle boots', 'slacks'])\n"
        "assert [c.node for c in classes] == ['sandal.n.01', 'gym_shoe.n.01', 'boot.n.01', 'trouser.n.01'], classes"
    )
    assert "mll_jax.concepts.wordnet" in modules  # the check below means something only if WordNet was read
    assert not modules & set(NEVER_FOR_MATCHING), sorted(modules & set(NEVER_FOR_MATCHING))


@pytest.mark.parametrize("argv", [["--help"], ["select", "--help"], ["cache", "info"]])
def test_commands_that_compute_nothing_import_no_jax(argv, tmp_path):
    modules = imported_after(
        "import contextlib, io, os\n"
        f"os.environ['MLL_JAX_CACHE'] = {str(tmp_path)!r}\n"
        "from mll_jax.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})"
    )
    assert "mll_jax.cli.main" in modules
    heavy = {"jax", "flax", "orbax.checkpoint", "optax", "transformers", "torch", "matplotlib", "scipy", "nltk"}
    assert not modules & heavy, sorted(modules & heavy)


def test_compile_cache_set_before_jax_is_imported_reaches_jax(tmp_path):
    """`enable_compile_cache` leaves jax unimported; jax, imported later, still keeps compilations in the cache."""
    script = (
        "import os, sys\n"
        f"os.environ['MLL_JAX_CACHE'] = {str(tmp_path)!r}\n"
        "from mll_jax import paths\n"
        "paths.enable_compile_cache()\n"
        "assert 'jax' not in sys.modules\n"
        "import jax\n"
        "print(jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "jax"), "0.02"]
