"""Property and fuzz tests (hypothesis)."""

import dataclasses
import functools
import json
import re

import jax
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mll_jax import nets
from mll_jax.concepts import matching, sdag
from mll_jax.configs.selection import SolverConfig
from mll_jax.data import store
from mll_jax.hub import Hub
from mll_jax.selection import Choice, Selection, chco


@functools.cache
def graph():
    return sdag.build(store.load())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_matching_never_crashes_on_unicode(text):
    try:
        m = matching.match_one(graph(), text)
    except ValueError as error:  # only the name checks may refuse a string, each saying what is wrong
        assert re.search("is empty|the limit is 100|has no letters or digits", str(error)), error
    else:
        assert m.node is None or m.node in graph().graph


K, C, M, N = 4, 6, 5, 48
FAST = SolverConfig(restarts=2, steps=30)


@st.composite
def problems(draw):
    """Random CHCO problems; the last model is a 'general' one with a candidate for every class."""
    num_classes = draw(st.integers(2, K))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cand_mask = np.zeros((K, C), bool)
    cand_model = np.zeros((K, C), np.int32)
    for k in range(num_classes):
        n = rng.integers(1, C)
        cand_mask[k, :n] = True
        cand_model[k, : n - 1] = rng.integers(0, M - 1, n - 1)
        cand_model[k, n - 1] = M - 1
    labels = rng.integers(0, num_classes, N).astype(np.int32)
    scores = np.log(rng.dirichlet(np.ones(3), (N, K, C))[..., 0] + 1e-6).astype(np.float32)
    fit, val = chco.halves(scores, labels, np.arange(N) % 2 == 0)
    problem = chco.Problem(fit, val, cand_mask, cand_model, rng.random(M).astype(np.float32))
    return problem, num_classes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.sampled_from([1, 3]))  # a binding cap and a loose one: each value is a program to compile
def test_chco_covers_every_class_and_respects_max_models(case, max_models):
    problem, num_classes = case
    out = jax.device_get(chco.solve(problem, jax.random.key(0), dataclasses.replace(FAST, max_models=max_models)))
    w = out.w
    heads = (w > 0).sum(1)
    assert (heads[:num_classes] >= 1).all() and (heads <= FAST.heads_per_class).all() and (w[num_classes:] == 0).all()
    assert not (w > 0)[~problem.cand_mask].any()
    used = set(problem.cand_model[w > 0].tolist())
    assert len(used) <= max_models


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
floats = st.floats(-1e6, 1e6, allow_nan=False)
choices = st.builds(Choice, names, st.lists(st.integers(0, 9), max_size=3), st.lists(names, max_size=3), floats)
selections = st.builds(
    Selection,
    classes=st.lists(names, min_size=2, max_size=4),
    nodes=st.lists(names, max_size=4),
    concepts=st.lists(st.lists(names, max_size=2), max_size=4),
    choices=st.lists(st.lists(choices, max_size=2), max_size=4),
    temperatures=st.dictionaries(names, floats, max_size=3),
    biases=st.lists(floats, max_size=4),
    uncovered=st.lists(names, max_size=2),
    val_accuracy=st.floats(0, 1),
    val_accuracy_per_class=st.lists(st.floats(0, 1), max_size=4),
    num_candidates=st.lists(st.integers(0, 20), max_size=4),
    excluded=st.dictionaries(names, names, max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(selections)
def test_selection_json_round_trip_is_exact(selection):
    assert Selection.from_json(json.loads(selection.dumps())) == selection


def test_sdag_round_trip_is_exact(tmp_path):
    g = graph()
    g.save(tmp_path)
    again = sdag.SDAG.load(tmp_path)
    assert dict(again.graph.nodes(data=True)) == dict(g.graph.nodes(data=True))
    assert set(again.graph.edges) == set(g.graph.edges)
    assert all(np.array_equal(again.own[k], g.own[k]) for k in g.own)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 32), min_size=1, max_size=2), st.integers(0, 1000), st.sampled_from(["mlp", "cnn"]))
def test_hub_entry_round_trip_is_exact(hub_copy, hidden, seed, arch):
    config = {"hidden": hidden} if arch == "mlp" else {"channels": [h % 8 + 1 for h in hidden], "dense": 8}
    model = nets.build(arch, config, 3, seed=seed)
    hub_copy.add("prop", model, arch, config, ["Sandal", "Sneaker", "Ankle boot"], {"mean": 0.5, "std": 0.25})
    again = Hub.open(hub_copy.path)
    assert again.entry("prop").config == config and again.entry("prop").input_spec == {"mean": 0.5, "std": 0.25}
    x = np.linspace(-1, 1, 28 * 28, dtype=np.float32).reshape(1, 28, 28, 1)
    np.testing.assert_array_equal(again.load_model("prop")(x), model(x))
