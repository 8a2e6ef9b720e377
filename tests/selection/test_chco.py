import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from chco_problems import constructed_problem, two_noisy_views

from mll_jax import memory_maps
from mll_jax.configs.selection import SolverConfig
from mll_jax.selection import chco, programs


def test_recovers_the_known_best_combination():
    problem = constructed_problem()
    K, C = problem.cand_mask.shape
    brute = {}
    for pick in itertools.product(range(C), repeat=K):
        brute[pick] = float(chco.solve_fixed(problem, jnp.array(pick)).val_loss)
    assert min(brute, key=brute.get) == (2, 2, 2)
    out = jax.device_get(chco.solve(problem, jax.random.key(0)))
    assert out.w.argmax(1).tolist() == [2, 2, 2]
    assert out.val_accuracy > 0.8


def test_respects_the_candidate_mask():
    problem = constructed_problem()
    problem.cand_mask[1, 2] = False  # the best candidate of class 1 is not allowed
    out = jax.device_get(chco.solve(problem, jax.random.key(0)))
    assert out.w[1, 2] == 0 and (out.w[1] > 0).any()


def test_padding_does_not_change_the_answer():
    problem = constructed_problem(K=3, C=4)
    K, C = 4, 8
    cand_mask, cand_model = np.zeros((K, C), bool), np.zeros((K, C), np.int32)
    cand_mask[:3, :4] = True
    cand_model[:3, :4] = problem.cand_model
    halves = []
    for part in (problem.fit, problem.val):
        N = len(part.labels)
        scores = np.zeros((N + 10, K, C), np.float32)
        scores[:N, :3, :4] = part.scores
        halves.append(
            chco.Half(scores, np.pad(np.asarray(part.labels), (0, 10)), np.pad(np.asarray(part.weight), (0, 10)))
        )
    padded = chco.Problem(*halves, cand_mask, cand_model, problem.model_cost)
    out = jax.device_get(chco.solve(padded, jax.random.key(0)))
    assert out.w[:3].argmax(1).tolist() == [2, 2, 2] and out.w[3].sum() == 0


def test_head_combination_draws_on_two_views_and_beats_every_single_pick():
    problem = two_noisy_views()
    K, C = problem.cand_mask.shape
    best_single = max(
        float(chco.solve_fixed(problem, jnp.array(pick)).val_accuracy) for pick in itertools.product(range(C), repeat=K)
    )
    top1 = jax.device_get(chco.solve(problem, jax.random.key(0), SolverConfig(heads_per_class=1)))
    mixed = jax.device_get(chco.solve(problem, jax.random.key(0), SolverConfig()))  # the default combines
    assert ((top1.w > 0).sum(1) == 1).all()
    assert (mixed.w[:, :2].min(1) > mixed.w[:, 2:].max(1)).all(), mixed.w  # both views, above any noise kept
    assert mixed.val_accuracy > best_single + 0.02, (mixed.val_accuracy, best_single)
    assert (mixed.t == 0).all()  # a mixture's weights carry its scale


def test_head_combination_never_loses_on_validation_and_keeps_the_model_cap():
    for seed in range(3):
        problem = constructed_problem(seed)
        top1 = jax.device_get(chco.solve(problem, jax.random.key(seed), SolverConfig(heads_per_class=1)))
        mixed = jax.device_get(chco.solve(problem, jax.random.key(seed), SolverConfig(heads_per_class=3)))
        assert mixed.val_accuracy >= top1.val_accuracy
    problem = two_noisy_views()
    config = SolverConfig(max_models=3)
    capped = jax.device_get(chco.solve(problem, jax.random.key(0), config))
    used = {int(m) for m, w in zip(np.asarray(problem.cand_model).ravel(), capped.w.ravel()) if w > 0}
    assert len(used) <= 3, used


def test_masked_softmax_and_model_usage():
    mask = jnp.array([[True, True, False]])
    w = chco.masked_softmax(jnp.array([[0.0, 0.0, 5.0]]), mask)
    np.testing.assert_allclose(w, [[0.5, 0.5, 0.0]], atol=1e-6)
    problem = chco.Problem(None, None, cand_mask=mask, cand_model=jnp.array([[0, 1, 1]]), model_cost=jnp.zeros(2))
    np.testing.assert_allclose(chco.model_usage(w, problem), [0.5, 0.5], atol=1e-6)


def test_compiled_programs_are_bounded(monkeypatch):
    """Over the memory-map budget, compiled programs are dropped; the next call recompiles, same answer."""
    programs.forget()
    answers = {}
    for K in (2, 3, 2):
        problem, picks = constructed_problem(K=K), jnp.full(K, 2)
        answer = float(programs.compiled_call(chco.solve_fixed, problem, picks, config=SolverConfig()).val_accuracy)
        assert answers.setdefault(K, answer) == answer
    assert programs.count(chco.solve_fixed) == 2  # under budget: both kept
    monkeypatch.setattr(memory_maps, "BUDGET", 0.0)
    monkeypatch.setattr(memory_maps, "INTERVAL_S", 0.0)
    problem, picks = constructed_problem(K=4), jnp.full(4, 2)
    programs.compiled_call(chco.solve_fixed, problem, picks, config=SolverConfig())
    assert programs.count(chco.solve_fixed) == 1  # over budget: the others were dropped
    problem, picks = constructed_problem(K=2), jnp.full(2, 2)
    assert float(chco.solve_fixed(problem, picks).val_accuracy) == answers[2]


def test_a_mixture_never_leaves_a_class_without_a_head():
    """A problem the property test drew (tests/test_properties.py): refitting the mixture drove every weight of
    one class to 0, leaving the class to its bias; such a mixture is not kept."""
    case = np.load(Path(__file__).parent / "cases" / "mixture_empties_a_class.npz")
    half = {h: chco.Half(*(case[f"{h}_{f}"] for f in chco.Half._fields)) for h in ("fit", "val")}
    problem = chco.Problem(half["fit"], half["val"], case["cand_mask"], case["cand_model"], case["model_cost"])
    config = SolverConfig(restarts=2, steps=30, max_models=2)
    out = jax.device_get(chco.solve(problem, jax.random.key(0), config))
    heads = (out.w > 0).sum(1)
    assert (heads >= 1).all() and (heads <= config.heads_per_class).all(), out.w
    assert len(set(problem.cand_model[out.w > 0].tolist())) <= 2


def test_the_bias_ridge_holds_biases_near_zero():
    """`bias_weight` is the ridge on the class biases: a stronger one gives smaller biases, the same picks."""
    problem, picks = constructed_problem(seed=1, n_per_class=20), jnp.array([2, 2, 0])
    biases = {
        w: np.abs(np.asarray(chco.solve_fixed(problem, picks, SolverConfig(bias_weight=w)).b)).max()
        for w in (1e-4, 1.0)
    }
    assert biases[1.0] < 0.5 * biases[1e-4], biases
    with pytest.raises(ValueError, match="bias_weight must be positive"):
        SolverConfig(bias_weight=0.0)


def test_the_pool_weighs_every_real_candidate_of_a_class_equally_and_fits_nothing():
    problem = constructed_problem()
    problem.cand_mask[1, 2] = False  # a class with one candidate fewer
    out = jax.device_get(chco.solve(problem, jax.random.key(0), SolverConfig(combination="pool")))
    mask = np.asarray(problem.cand_mask)
    np.testing.assert_allclose(out.w, mask / mask.sum(1, keepdims=True))
    assert (out.t == 0).all() and (out.b == 0).all()
    scores = np.asarray(problem.val.scores)  # [N, K, C]
    pooled = (scores * mask).sum(-1) / mask.sum(-1)
    assert out.val_accuracy == pytest.approx(np.mean(pooled.argmax(1) == np.asarray(problem.val.labels)), abs=1e-6)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"combination": "mean"}, "combination must be one of"),
        ({"combination": "pool", "max_models": 2}, "max_models needs combination='fitted'"),
    ],
)
def test_bad_combination_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        SolverConfig(**settings)


def test_the_pool_gives_the_general_model_its_share_where_experts_also_serve_a_class():
    problem = constructed_problem()
    K, C = problem.cand_mask.shape
    general = np.zeros((K, C), bool)
    general[:2, 0] = True  # classes 0 and 1: the general model is candidate 0; class 2 has none
    problem = problem._replace(cand_general=general)
    out = jax.device_get(
        chco.solve(problem, jax.random.key(0), SolverConfig(combination="pool", pool_general_share=0.5))
    )
    mask = np.asarray(problem.cand_mask)
    np.testing.assert_allclose(out.w[:2, 0], 0.5)
    np.testing.assert_allclose(out.w[:2, 1:], 0.5 / (mask[:2, 1:].sum(1, keepdims=True)) * mask[:2, 1:])
    np.testing.assert_allclose(out.w[2], mask[2] / mask[2].sum())  # no general candidate: an equal pool
    np.testing.assert_allclose(out.w.sum(1), 1.0, rtol=1e-6)
    for refused in (1.5, "fitted"):
        with pytest.raises(ValueError, match="pool_general_share must lie in"):
            SolverConfig(combination="pool", pool_general_share=refused)


def test_a_measured_share_is_the_general_models_node_sample_accuracy_over_its_and_the_experts():
    """The general model is a noise candidate in classes 0 and 1: alone there it is right on few node samples, so
    its share falls below a half, to the ratio of the two accuracies on both halves."""
    problem = constructed_problem()
    K, C = problem.cand_mask.shape
    general = np.zeros((K, C), bool)
    general[:2, 0] = True
    problem = problem._replace(cand_general=general)
    out = jax.device_get(
        chco.solve(problem, jax.random.key(0), SolverConfig(combination="pool", pool_general_share="measured"))
    )
    scores = np.concatenate([np.asarray(problem.fit.scores), np.asarray(problem.val.scores)])  # [N, K, C]
    labels = np.concatenate([np.asarray(problem.fit.labels), np.asarray(problem.val.labels)])
    third = scores[:, 2].mean(-1)  # class 2 has no general candidate: its equal pool in both
    general_alone = np.stack([scores[:, 0, 0], scores[:, 1, 0], third], 1)
    experts_alone = np.stack([scores[:, 0, 1:].mean(-1), scores[:, 1, 1:].mean(-1), third], 1)
    accuracies = [np.mean(z.argmax(1) == labels) for z in (general_alone, experts_alone)]
    share = accuracies[0] / sum(accuracies)
    assert accuracies[0] < accuracies[1] and 0.1 < share < 0.5, accuracies
    np.testing.assert_allclose(out.w[:2, 0], share, rtol=1e-5)
    np.testing.assert_allclose(out.w[:2, 1:], (1 - share) / 3, rtol=1e-5)
    np.testing.assert_allclose(out.w[2], 0.25)
