from mll_jax.concepts import task as task_lib
from mll_jax.experiments import baselines
from mll_jax.selection.candidates import candidates


def test_the_random_baseline_draws_independently_per_task_and_repeatably(hub):
    a = task_lib.resolve(hub.sdag, ["sandals", "sneakers", "ankle boots"])
    b = task_lib.resolve(hub.sdag, ["t-shirt", "trousers", "pullover"])
    width = min(len(cs) for cs in candidates(hub, a) + candidates(hub, b))
    same_shape = [list(range(width))] * 3  # both tasks offer equally many candidates per class (only counts matter)
    picks = {
        seed: (baselines.random_pick(same_shape, seed, a), baselines.random_pick(same_shape, seed, b))
        for seed in range(5)
    }
    assert any(pa != pb for pa, pb in picks.values()), "two tasks drew the same candidates under every seed"
    assert all(baselines.random_pick(same_shape, seed, a) == pa for seed, (pa, _) in picks.items())
    assert len({tuple(pa) for pa, _ in picks.values()}) > 1, "the seed changes nothing"
