import pytest

from mll_jax.concepts import matching, sdag
from mll_jax.concepts import task as task_lib
from mll_jax.data import store


@pytest.fixture(scope="module")
def graph():
    return sdag.build(store.load())


@pytest.mark.parametrize(
    "name, node",
    [
        ("sneakers", "gym_shoe.n.01"),
        ("Sneaker", "gym_shoe.n.01"),
        ("trousers", "trouser.n.01"),
        ("pants", "trouser.n.01"),
        ("handbag", "bag.n.04"),
        ("purse", "bag.n.04"),
        ("t-shirt", "jersey.n.03"),
        ("T-shirts", "jersey.n.03"),
        ("tee shirt", "jersey.n.03"),
        ("T-shirt/top", "jersey.n.03"),
        ("ankle boots", "boot.n.01"),
        ("Ankle-Boot", "boot.n.01"),
        ("jumper", "sweater.n.01"),
        ("frock", "dress.n.01"),
        ("shoes", "shoe.n.01"),
        ("footwear", "footwear.n.02"),
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
        (["sandal"], "at least 2 classes"),
        (["sandal", "Sandal"], "duplicate"),
        (["sneaker", "trainers"], "both mean gym_shoe.n.01"),
        (["sandal", "sandle"], "both mean sandal.n.01"),  # the typo matches by meaning
        (["sandal", "sneekers"], "did you mean sneaker"),
        (["footwear", "shoes", "sandal", "sneakers", "boots"], "nothing left"),
        ("sandal", "list of names"),
    ],
)
def test_bad_tasks(graph, names, message):
    with pytest.raises(task_lib.TaskError, match=message):
        task_lib.resolve(graph, names)


def test_names_outside_wordnet_match_by_hypernym_or_meaning(hub):
    from mll_jax.configs import suite

    for name, node in suite.OUTSIDE_WORDNET.items():
        found = matching.match_one(hub.sdag, name)
        assert found.node == node and found.how in ("hypernym", "embedding"), (name, found)
    for name in ["laptop", "giraffe", "car", "xyzzy"]:  # unrelated: below the threshold, or too broad to climb to
        assert not matching.match_one(hub.sdag, name).covered, name
    outside = [t for t in suite.DEMO_TASKS if any(n in suite.OUTSIDE_WORDNET for n in t)]
    assert len(outside) >= 5


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
    nodes, embeddings = matching.node_embeddings(hub_copy.sdag)
    assert path.is_file() and nodes == sorted(hub_copy.sdag.graph) and embeddings.shape == (len(nodes), 384)
    again = SDAG.load(hub_copy.path)  # a fresh load reads them back, without recomputing
    assert (matching.node_embeddings(again)[1] == embeddings).all()
