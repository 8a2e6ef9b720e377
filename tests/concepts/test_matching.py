import importlib.util
from pathlib import Path

import pytest

from mll_jax.concepts import matching, sdag
from mll_jax.concepts import task as task_lib
from mll_jax.data import store


@pytest.fixture(scope="module")
def graph():
    return sdag.build(store.load())


# Names from the development suite and names (configs.suite.DEV_TASKS, DEV_NAMES), never the reported suite's.
@pytest.mark.parametrize(
    "name, node",
    [
        ("gym shoes", "gym_shoe.n.01"),
        ("Gym-Shoe", "gym_shoe.n.01"),
        ("TENNIS SHOES", "gym_shoe.n.01"),
        ("pair of trousers", "trouser.n.01"),
        ("pocketbook", "bag.n.04"),
        ("tee shirts", "jersey.n.03"),
        ("boot", "boot.n.01"),
        ("sweaters", "sweater.n.01"),
        ("footgear", "footwear.n.02"),
        ("sandal.n.01", "sandal.n.01"),
    ],
)
def test_plurals_and_synonyms(graph, name, node):
    assert matching.match_one(graph, name).node == node


def test_unknown_word_is_uncovered(graph):
    m = matching.match_one(graph, "xyzzy")
    assert not m.covered and m.confidence == 0.0
    # a real WordNet noun whose senses are not in the SDAG is uncovered too
    assert matching.match_one(graph, "giraffe").node is None


def test_a_name_no_node_matches_is_a_class_by_name_with_its_closest_nodes(graph):
    espadrilles, typo = task_lib.resolve(graph, ["espadrilles", "sneekers"])
    assert espadrilles.node == "sandal.n.01" and not espadrilles.by_name
    assert typo.by_name and typo.node is None and typo.concepts == frozenset()
    assert len(typo.match.alternatives) == 4 and all(v in graph.graph for v in typo.match.alternatives)
    # where no model can answer it by name, the error names it and suggests lemmas
    error = task_lib.unmatched_error(graph, [espadrilles, typo], "the hub has no general model")
    assert "'sneekers'" in str(error) and "did you mean sneaker" in str(error) and "espadrilles" not in str(error)


@pytest.mark.parametrize("bad", ["", "   ", "!!!", "x" * 101])
def test_bad_names(graph, bad):
    with pytest.raises(ValueError):
        matching.match_one(graph, bad)


def test_ancestor_class_excludes_descendant_classes(graph):
    shirt, tee = task_lib.resolve(graph, ["shirt", "t-shirt"])
    assert shirt.concepts == {"shirt.n.01"} and tee.concepts == {"jersey.n.03"}
    footwear, shoes = task_lib.resolve(graph, ["footwear", "shoes"])
    assert footwear.concepts == {"boot.n.01"}


@pytest.mark.parametrize(
    "names, message",
    [
        ([], "at least 2 classes"),
        (["espadrilles"], "at least 2 classes"),
        (["espadrilles", "Espadrilles"], "duplicate"),
        (["gym shoe", "tennis shoes"], "both mean gym_shoe.n.01"),
        (["espadrilles", "sandle"], "both mean sandal.n.01"),  # the typo matches by meaning
        (["footgear", "shoe.n.01", "espadrilles", "gym shoes", "boot"], "nothing left"),
        ("espadrilles", "list of names"),
    ],
)
def test_bad_tasks(graph, names, message):
    with pytest.raises(task_lib.TaskError, match=message):
        task_lib.resolve(graph, names)


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name, node, how",
    [
        ("slacks", "trouser.n.01", "hypernym"),  # a WordNet noun below the SDAG climbs to a concept
        ("cowboy boots", "boot.n.01", "hypernym"),
        ("running shoes", "gym_shoe.n.01", "embedding"),  # not in WordNet: by meaning
        ("cargo pants", "trouser.n.01", "embedding"),
        ("hiking boots", "boot.n.01", "embedding"),
    ],
)
def test_names_outside_the_sdag_match_by_hypernym_or_meaning(hub, name, node, how):
    found = matching.match_one(hub.sdag, name)
    assert (found.node, found.how) == (node, how), found


@pytest.mark.parametrize("name", ["sock", "scarf", "laptop", "giraffe", "car", "xyzzy"])
def test_unrelated_names_are_uncovered(hub, name):
    assert not matching.match_one(hub.sdag, name).covered  # below the threshold, or too broad to climb to


def test_the_embedding_threshold_is_the_development_names_choice(hub):
    """EMBEDDING_THRESHOLD is the lowest threshold with the most right answers on the development names."""
    from mll_jax.configs import suite

    sweep = _benchmark("matching")
    rows = sweep.decisions(hub.sdag, suite.DEV_NAMES)
    counts = {float(t): sweep.right_at(rows, t) for t in sweep.GRID}
    best = max(counts.values())
    assert sweep.right_at(rows, matching.EMBEDDING_THRESHOLD) == best
    assert min(t for t, c in counts.items() if c == best) == matching.EMBEDDING_THRESHOLD
    reported = {matching.normalise(n) for t in suite.DEMO_TASKS for n in t}
    development = {matching.normalise(n) for n in [*suite.DEV_NAMES, *(n for t in suite.DEV_TASKS for n in t)]}
    assert not reported & development  # the suites share no name


def test_the_task_context_chooses_between_senses(hub):
    """'sack' is a coat, a dress or a bag in WordNet; the other class names say which one is meant."""
    assert matching.match_one(hub.sdag, "sack").node == "coat.n.01"  # alone: WordNet's first sense that climbs
    beside_dresses = matching.match(hub.sdag, ["sack", "chemise", "shift dress"])[0]
    assert (beside_dresses.node, beside_dresses.how) == ("dress.n.01", "hypernym+context")
    assert "coat.n.01" in beside_dresses.alternatives
    assert matching.match(hub.sdag, ["sack", "sport coat", "blazer"])[0].node == "coat.n.01"


def test_node_text_embeddings_are_stored_with_the_sdag(hub_copy):
    from mll_jax.concepts.sdag import SDAG

    path = hub_copy.path / "sdag_text.npz"
    path.unlink(missing_ok=True)
    nodes, embeddings = hub_copy.sdag.node_embeddings()
    assert path.is_file() and nodes == sorted(hub_copy.sdag.graph) and embeddings.shape == (len(nodes), 384)
    again = SDAG.load(hub_copy.path)  # a fresh load reads them back, without recomputing
    assert (again.node_embeddings()[1] == embeddings).all()
