"""Training augmentations on real store images: what each one does, and bad names."""

import numpy as np
import pytest

from mll_jax.data import augment
from mll_jax.zoo import train


@pytest.fixture(scope="module")
def images(hub):
    return hub.store.images[:64]


def test_shift_translates_each_image_by_at_most_the_given_pixels(images):
    shifted = augment.shift(images, np.random.default_rng(0), pixels=2)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = set()
    for original, out in zip(padded, shifted):
        matches = [
            (dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(original[dy : dy + 28, dx : dx + 28], out)
        ]
        assert matches, "a shifted image is not a translate of its original"
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets are drawn per image


def test_flip_mirrors_about_half_the_images(images):
    flipped = augment.flip(images, np.random.default_rng(0))
    mirrored = [np.array_equal(out, original[:, ::-1]) for original, out in zip(images, flipped)]
    kept = [np.array_equal(out, original) for original, out in zip(images, flipped)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert 16 < sum(mirrored) < 48


def test_an_unknown_augmentation_is_named_before_any_training(hub):
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['rotate'\]; choose from \['flip', 'shift'\]"):
        train.fit(None, hub.store.images[:8], hub.store.concepts[:8], None, augmentations=("shift", "rotate"))


def test_early_stopping_keeps_the_best_epoch_on_the_development_split():
    from mll_jax import engine, nets
    from mll_jax.configs.demo_hub import INPUT_SPEC, SMALL_MLP
    from mll_jax.data import store

    pool, dev = store.expert_pool(), store.development()
    two = [np.flatnonzero(np.isin(d.labels, [2, 4]))[:600] for d in (pool, dev)]  # pullover against coat
    images, labels = pool.images[two[0]], (pool.labels[two[0]] == 4).astype(np.int32)
    validation = dev.images[two[1]], (dev.labels[two[1]] == 4).astype(np.int32)
    model = nets.build("mlp", SMALL_MLP, 2)
    model, history = train.fit_early_stopping(model, images, labels, validation, INPUT_SPEC, 8, 1, 64, 1e-2)
    accuracy = history["val_accuracy"]
    assert history["epochs"] == len(accuracy) <= 8
    assert accuracy[history["best_epoch"] - 1] == max(accuracy)
    if history["epochs"] < 8:  # it stopped: the epoch after the best did not improve
        assert history["epochs"] == history["best_epoch"] + 1
    probs = engine.model_probabilities(model, INPUT_SPEC, validation[0])
    assert np.mean(probs.argmax(1) == validation[1]) == max(accuracy)  # the weights of the best epoch, not the last
    with pytest.raises(ValueError, match="patience and max_epochs must be at least 1"):
        train.fit_early_stopping(model, images, labels, validation, INPUT_SPEC, 8, 0)
