import numpy as np

from mll_jax.experiments import evaluation


def task(mll, other):
    return {"by_seed": {"mll": mll, "f1_top3": other}}


def test_a_difference_is_beyond_the_noise_only_over_seeds_and_over_tasks():
    methods = ("mll", "f1_top3")
    # one task carries the whole lead: steady over seeds, not over tasks
    lopsided = [task([0.9, 0.9, 0.9], [0.6, 0.6, 0.6])] + [task([0.8, 0.8, 0.8], [0.8, 0.8, 0.8])] * 3
    d = evaluation.summarise(lopsided, methods)["differences"]["f1_top3"]
    assert d["stderr"] == 0 and d["stderr_tasks"] > 0
    assert (d["wins"], d["losses"], d["ties"]) == (1, 0, 3)
    assert np.isclose(d["mean"], 0.075) and np.isclose(d["stderr_tasks"], 0.075)  # task differences 0.3, 0, 0, 0
    assert not d["beyond_noise"]
    # the same lead on every task, a little noisy over seeds: beyond the noise on both counts
    steady = [task([0.9, 0.92, 0.91], [0.8, 0.81, 0.8]), task([0.7, 0.71, 0.69], [0.6, 0.62, 0.6])] * 2
    d = evaluation.summarise(steady, methods)["differences"]["f1_top3"]
    assert d["beyond_noise"] and d["wins"] == 4 and d["stderr_tasks"] > 0 and d["stderr"] > 0
