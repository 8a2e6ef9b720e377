"""The open world's suites (`configs.open_world_suite`): drawn by their fixed rule from the real SDAG and splits."""

import dataclasses

import numpy as np
import pytest

from mll_jax.concepts import matching
from mll_jax.configs import open_world_suite
from mll_jax.configs.open_world_hub import DOMAINS
from mll_jax.experiments import world_suites


@pytest.fixture(scope="module")
def world():
    from mll_jax.concepts import sdag
    from mll_jax.configs.open_world import STORE_SPEC
    from mll_jax.data import store, world

    graph = sdag.build(store.load(STORE_SPEC))
    development = world.load("development")
    return graph, frozenset(np.asarray(development.synsets)[np.unique(development.labels)].tolist())


def test_plurals_are_regular_english():
    assert [world_suites.plural(w) for w in ("dog", "box", "peach", "cherry", "day", "ice skate")] == [
        "dogs",
        "boxes",
        "peaches",
        "cherries",
        "days",
        "ice skates",
    ]


def test_the_development_suite_follows_its_rule(world):
    graph, available = world
    rule = open_world_suite.DEVELOPMENT
    tasks = world_suites.draw(graph, available, rule)
    kinds = [t["kind"] for t in tasks]
    assert len(tasks) == 60 and kinds.count("within") == 20 and kinds.count("depth") == 10
    assert [t["domains"] for t in tasks if t["kind"] == "within"] == [[d] for d in rule.within for _ in range(4)]
    for t in tasks:
        assert 2 <= len(t["nodes"]) <= 20 and len(t["names"]) == len(t["nodes"])
        under = [graph.concepts_under(v) & available for v in t["nodes"]]
        assert all(under) and sum(map(len, under)) == len(set().union(*under)), t  # no class inside another
        inside = set().union(*(graph.concepts_under(DOMAINS[d]) for d in t["domains"]))
        assert set().union(*under) <= inside, t
    depth = [t for t in tasks if t["kind"] == "depth"]
    assert all(any(len(graph.concepts_under(v) & available) > 1 for v in t["nodes"]) for t in depth)  # a broad class
    names = [n for t in tasks for n in t["names"]]
    assert 0.15 < np.mean([n.endswith("s") for n in names]) < 0.6 and not any(n[:1].isupper() for n in names)
    typed = [matching.match_one(graph, n).node == v for t in tasks for n, v in zip(t["names"], t["nodes"])]
    assert np.mean(typed) > 0.95  # a name alone matches the node it was written for


def test_suites_are_fixed_by_their_seed(world):
    graph, available = world
    first = world_suites.draw(graph, available, open_world_suite.DEVELOPMENT)
    assert world_suites.draw(graph, available, open_world_suite.DEVELOPMENT) == first
    other = world_suites.draw(graph, available, dataclasses.replace(open_world_suite.DEVELOPMENT, seed=0))
    assert sum(a["nodes"] == b["nodes"] for a, b in zip(first, other)) < 5
    with pytest.raises(ValueError, match="unknown split 'train'"):
        open_world_suite.get_rule("train")
