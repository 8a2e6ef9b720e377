import gzip
import shutil

import numpy as np
import pytest

from mll_jax.concepts import wordnet
from mll_jax.configs.specs import StoreSpec
from mll_jax.data import cuts, store
from mll_jax.data import datasets as data


def test_fashion_mnist_shapes_and_counts():
    train, test = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    assert train.images.shape == (60_000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10_000, 28, 28, 1)
    assert np.bincount(test.labels).tolist() == [1000] * 10


def test_catalog_synsets_are_real_wordnet_nouns():
    wn = wordnet.wordnet()
    classes = data.catalog("fashion_mnist")["classes"]
    by_name = {c["name"]: c["synset"] for c in classes}
    assert by_name["Sneaker"] == "gym_shoe.n.01"
    assert "handbag" in wn.synset(by_name["Bag"]).lemma_names()  # a handbag, not any bag
    for c in classes:
        assert wn.synset(c["synset"]).pos() == "n"


def test_bad_magic_number_is_reported(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data.FASHION_MNIST_DIR / name, tmp_path / name)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        raw = bytearray(f.read())
    raw[3] = 0x99
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(ValueError, match="magic number"):
        data.fashion_mnist("test", root=tmp_path)


def test_truncated_file_is_reported(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data.FASHION_MNIST_DIR / name, tmp_path / name)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="bytes of data"):
        data.fashion_mnist("test", root=tmp_path)


def test_missing_dataset_names_the_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("test", root=tmp_path)


def test_unknown_source_and_split():
    with pytest.raises(ValueError, match="unknown data source"):
        data.load("emnist", "train")
    with pytest.raises(ValueError, match="unknown split"):
        data.load("fashion_mnist", "validation")


def test_store_development_split_and_expert_pool_are_disjoint():
    labels = data.load("fashion_mnist", "train").labels
    kept, dev, pool = cuts.split_indices(labels, per_class=1000, seed=0, dev_per_class=500)
    assert len(np.intersect1d(kept, pool)) == len(np.intersect1d(kept, dev)) == len(np.intersect1d(dev, pool)) == 0
    assert len(kept) + len(dev) + len(pool) == len(labels)
    assert np.bincount(labels[kept]).tolist() == [1000] * 10
    assert np.bincount(labels[dev]).tolist() == [500] * 10
    assert np.array_equal(cuts.split_indices(labels, per_class=1000, seed=0)[0], kept)  # the store stays put
    with pytest.raises(ValueError, match="too few train items"):
        cuts.split_indices(labels, per_class=3000, seed=0, dev_per_class=3000)


def test_the_development_split_is_what_the_spec_says():
    spec = StoreSpec()
    dev, pool = store.development(spec), store.expert_pool(spec)
    assert np.bincount(dev.labels).tolist() == [spec.dev_per_class] * 10
    assert len(dev) + len(pool) + 10 * spec.per_class == 60_000
    with pytest.raises(ValueError, match="no development split"):
        store.development(StoreSpec(dev_per_class=0))
    assert store.fit_mask(10).tolist() == [True, False] * 5


def test_corruptions_blur_and_add_noise_and_unknown_ones_are_refused():
    from mll_jax.data.corrupt import corrupt

    images = data.load("fashion_mnist", "test").images[:64]
    blurred, noisy = corrupt(images, "blur"), corrupt(images, "noise", seed=3)
    assert blurred.dtype == noisy.dtype == np.uint8 and blurred.shape == noisy.shape == images.shape
    edges = lambda x: np.abs(np.diff(x.astype(np.int32), axis=2)).mean()  # noqa: E731
    assert edges(blurred) < 0.7 * edges(images) < edges(noisy)
    assert np.array_equal(noisy, corrupt(images, "noise", seed=3)) and not np.array_equal(noisy, images)
    assert corrupt(images, None) is images
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        corrupt(images, "rain")
