"""The open world's splits by style: every style in one split, photographs only in test, no picture nor a view of
one in two splits, one concept index for all."""

import hashlib

import numpy as np
import pytest

from mll_jax.configs.open_world import SPLITS, STYLE_SPLITS, VIEWS
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
