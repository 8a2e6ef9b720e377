"""The open world's splits by style: every style in one split, photographs only in test, no picture nor a view of
one in two splits, one concept index for all."""

import hashlib

import numpy as np
import pytest

from mll_jax.configs.open_world import POOL_PER_CLASS, SPLITS, STYLE_SPLITS, VIEWS
from mll_jax.data import datasets, emoji, open_world

pytestmark = pytest.mark.store_independent


def _hashes(images: np.ndarray) -> set[bytes]:
    return {hashlib.sha1(image.tobytes()).digest() for image in images}


def test_every_style_lies_in_exactly_one_split_and_photographs_only_in_test():
    placed = [source for name in SPLITS for source in STYLE_SPLITS[name]]
    assert sorted(placed) == sorted([f"emoji:{s}" for s in emoji.STYLES] + ["photos"])
    assert [name for name in SPLITS if "photos" in STYLE_SPLITS[name]] == ["test"]


def test_no_picture_nor_a_view_of_one_is_in_two_splits():
    splits = {name: open_world.split(name, 0 if name == "test" else VIEWS) for name in SPLITS}
    hashes = {name: _hashes(d.images) for name, d in splits.items()}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not hashes[a] & hashes[b], (a, b)
    store = splits["store"]
    originals = datasets.load("emoji:google", "all")
    assert len(store) == (VIEWS + 1) * len(originals)
    np.testing.assert_array_equal(store.images[: len(originals)], originals.images)
    np.testing.assert_array_equal(store.labels, np.tile(originals.labels, VIEWS + 1))
    assert np.median(store.images[len(originals) :, 0, 0]) == 255  # views keep the white ground (edge repeated)
    assert len(np.unique(store.labels)) >= 400 and store.classes == tuple(datasets.catalog("emoji")["classes"])
    # photographs join the test split under the emoji catalog's labels, where it has their concept
    test = splits["test"]
    photos = datasets.load("photos", "test")
    emoji_label = {c["synset"]: c["label"] for c in store.classes}
    synsets = [photos.classes[y]["synset"] for y in photos.labels]
    shared = [emoji_label[s] for s in synsets if s in emoji_label]
    assert len(test) == len(datasets.load("emoji:openmoji", "all")) + len(shared)
    np.testing.assert_array_equal(test.labels[-len(shared) :], shared)


def test_views_of_the_test_split_and_unknown_splits_are_refused():
    with pytest.raises(ValueError, match="no augmented views"):
        open_world.split("test", 2)
    with pytest.raises(ValueError, match="unknown open-world split 'train'"):
        open_world.split("train")


def test_the_open_world_store_holds_every_domain_on_one_canvas_under_one_concept_index():
    from mll_jax.concepts import sdag
    from mll_jax.configs.open_world import BY_IMAGE, CANVAS, STORE_SPEC
    from mll_jax.data import store, world

    held = store.load(STORE_SPEC)
    assert held.images.shape[1:] == CANVAS and held.images.dtype == np.uint8
    assert held.synsets[: len(datasets.catalog("emoji")["classes"])] == tuple(
        c["synset"] for c in datasets.catalog("emoji")["classes"]
    )
    assert len(set(held.synsets)) == len(held.synsets) == len(np.unique(held.concepts))  # every concept has images
    index = {s: i for i, s in enumerate(held.synsets)}
    for source in BY_IMAGE:  # 30 store images of each class, under the world's index (dress, coat, bag: emoji's)
        for c in datasets.catalog(source)["classes"]:
            assert (held.concepts == index[c["synset"]]).sum() >= STORE_SPEC.per_class, (source, c["synset"])
    assert (held.concepts == index["zero.n.02"]).sum() == 2 * STORE_SPEC.per_class  # two hands of digits
    assert (held.concepts == index["dress.n.01"]).sum() > STORE_SPEC.per_class  # Fashion-MNIST's and emoji's dresses
    grey = held.images[held.concepts == index["trouser.n.01"]]
    assert (grey[..., 0] == grey[..., 2]).all()  # grey domains drawn grey on the RGB canvas
    development = world.load("development")
    assert not _hashes(development.images) & _hashes(held.images)
    graph = sdag.build(held)
    assert set(held.synsets) <= set(graph.graph.nodes) and graph.graph.number_of_nodes() > 850
    pool = store.expert_pool(STORE_SPEC)  # what experts train on: every domain on the canvas, apart from the rest
    assert pool.images.shape[1:] == CANVAS and not _hashes(pool.images) & (
        _hashes(held.images) | _hashes(development.images)
    )
    assert np.bincount(pool.labels)[index["trouser.n.01"]] == POOL_PER_CLASS  # capped; 8x8 digits keep all theirs
    zeros = [
        (datasets.load(s, "train").labels == 0).sum() - 2 * STORE_SPEC.per_class for s in ("mnist", "sklearn_digits")
    ]
    assert max(zeros) < POOL_PER_CLASS and (pool.labels == index["zero.n.02"]).sum() == sum(zeros)  # under the cap
    with pytest.raises(ValueError, match="no split 'validation'"):
        world.load("validation")


def test_each_row_of_a_split_names_the_style_or_source_it_came_from():
    from mll_jax.configs.open_world import BY_IMAGE
    from mll_jax.data import world

    test, sources = world.load("test"), world.sources("test")
    assert len(sources) == len(test) and set(sources) == set(STYLE_SPLITS["test"]) | set(BY_IMAGE)
    photos = datasets.load("photos", "test")
    rows = sources == "photos"  # the photographs of concepts the world has, as drawn
    assert 0 < rows.sum() <= len(photos)
    assert set(np.asarray(test.synsets)[test.labels[rows]]) <= set(photos.synsets)
    assert (np.asarray(test.synsets)[test.labels[sources == "mnist"]] != "trouser.n.01").all()
    views = open_world.sources("store", VIEWS)
    assert len(views) == len(open_world.split("store", VIEWS)) and set(views) == set(STYLE_SPLITS["store"])
    with pytest.raises(ValueError, match="no split 'validation'"):
        world.sources("validation")
