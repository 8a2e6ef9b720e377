import networkx as nx
import numpy as np
import pytest

from mll_jax.concepts import sdag
from mll_jax.data import store


@pytest.fixture(scope="module")
def graph():
    return sdag.build(store.load())


def test_structure(graph):
    g = graph.graph
    assert nx.is_directed_acyclic_graph(g)
    assert [v for v in g if g.in_degree(v) == 0] == [sdag.ROOT]
    assert set(g.predecessors("sandal.n.01")) == {"shoe.n.01"} == set(g.predecessors("gym_shoe.n.01"))
    assert "jersey.n.03" in nx.descendants(g, "shirt.n.01")  # T-shirt under shirt
    assert len(graph.concept_nodes) == 10
    assert graph.concepts_under("footwear.n.02") == {"sandal.n.01", "gym_shoe.n.01", "boot.n.01"}
    assert g.nodes["gym_shoe.n.01"]["lemmas"][:2] == ["gym shoe", "sneaker"]
    assert "ankle boot" in g.nodes["boot.n.01"]["lemmas"]


def test_internal_samples_are_a_capped_stratified_union(graph):
    shoe = graph.samples["shoe.n.01"]
    concepts = store.load().concepts[shoe]
    assert len(shoe) == 1000
    assert sorted(np.bincount(concepts, minlength=10)[[5, 7]].tolist()) == [500, 500]
    assert set(shoe) <= set(graph.own["sandal.n.01"]) | set(graph.own["gym_shoe.n.01"])


def test_save_load_round_trip(graph, tmp_path):
    graph.save(tmp_path)
    loaded = sdag.SDAG.load(tmp_path)
    assert nx.utils.graphs_equal(loaded.graph, graph.graph)
    assert dict(loaded.graph.nodes(data=True)) == dict(graph.graph.nodes(data=True))
    for v in graph.graph:
        np.testing.assert_array_equal(loaded.samples[v], graph.samples[v])


def test_describe(graph):
    text = sdag.describe(graph, "shoe.n.01")
    assert "children: gym_shoe.n.01, sandal.n.01" in text
    with pytest.raises(KeyError, match="not in the SDAG"):
        sdag.describe(graph, "cat.n.01")
