"""One memory-map budget for every stage's compiled programs (mll_jax.memory_maps)."""

import jax.numpy as jnp
import numpy as np
from chco_problems import constructed_problem

from mll_jax import engine, memory_maps
from mll_jax.configs.selection import SolverConfig
from mll_jax.selection import chco, programs


def _solve(K: int) -> float:
    problem, picks = constructed_problem(K=K), jnp.full(K, 2)
    return float(programs.compiled_call(chco.solve_fixed, problem, picks, config=SolverConfig()).val_accuracy)


def test_over_budget_every_stages_programs_are_dropped_and_compiled_again(hub, monkeypatch):
    images, ids = hub.store.images[:100], ["footwear-cnn", "footwear-mlp", "family-footwear"]  # a few: all recompile
    programs.forget()
    answer = _solve(3)
    before = engine.from_hub(hub, ids, batch_size=64).probabilities(images)
    assert programs.count(chco.solve_fixed) == 1
    share = memory_maps.share_in_use()
    assert memory_maps.check(budget=0.0)  # jax's caches and the registered CHCO programs
    assert programs.count(chco.solve_fixed) == 0
    assert memory_maps.share_in_use() < share  # the compiled programs' maps were released

    # the stages check the budget before they compile: a new engine's first run drops the CHCO program
    _solve(3)
    monkeypatch.setattr(memory_maps, "BUDGET", 0.0)
    monkeypatch.setattr(memory_maps, "INTERVAL_S", 0.0)
    after = engine.from_hub(hub, ids, batch_size=32).probabilities(images)
    assert programs.count(chco.solve_fixed) == 0
    for model_id, probs in before.items():
        np.testing.assert_allclose(after[model_id], probs, atol=2e-6, err_msg=model_id)
    assert _solve(3) == answer  # compiled again, same answer
    assert not memory_maps.check(budget=1.0)
