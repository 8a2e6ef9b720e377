"""Each model sees images through its own input spec: another size and channel count are converted in the
engine's preprocessing, as PIL converts them (real emoji), and a demo-hub expert keeps its accuracy on
Fashion-MNIST test images drawn at another size in RGB."""

import jax
import numpy as np
import pytest
from PIL import Image

import mll_jax as mll
from mll_jax import engine
from mll_jax.data import datasets
from mll_jax.data.preprocess import preprocess, spec_key, to_shape


@pytest.mark.store_independent
def test_rgb_emoji_become_grey_28x28_as_pil_draws_them():
    pictures = datasets.load("emoji:google", "all").images[:64]  # 64x64 RGB
    got = np.asarray(to_shape(jax.numpy.asarray(pictures, np.float32), (28, 28, 1)))[..., 0]
    # PIL: "L" (601 luma, rounded to uint8), then a bilinear (antialiased) reduction
    want = np.stack([np.asarray(Image.fromarray(p).convert("L").resize((28, 28), Image.BILINEAR)) for p in pictures])
    difference = np.abs(got - want.astype(np.float32))
    # within PIL's own rounding of "L" to whole levels: measured 0.17 on average, 1.13 at most
    assert difference.mean() < 0.5 and difference.max() < 2, (difference.mean(), difference.max())


@pytest.mark.store_independent
def test_grey_becomes_rgb_by_repeating_and_an_unknown_channel_count_is_refused():
    grey = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    rgb = np.asarray(to_shape(jax.numpy.asarray(grey), (28, 28, 3)))
    np.testing.assert_array_equal(rgb, np.repeat(grey, 3, axis=-1))
    with pytest.raises(ValueError, match="4 channels.*only grey"):
        to_shape(jax.numpy.zeros((1, 8, 8, 4)), (28, 28, 1))
    assert dict(spec_key({"shape": [28, 28, 1], "mean": 0.5, "dtype": "uint8"})) == {
        "shape": (28, 28, 1),
        "mean": 0.5,
    }


def test_an_expert_keeps_its_accuracy_on_its_classes_drawn_at_64x64_in_rgb(hub, test_split):
    model_id = "footwear-cnn"
    names = [c["name"] for c in test_split.classes]
    classes = [names.index(head) for head in hub.entry(model_id).heads]  # declared: Sandal, Sneaker, Ankle boot
    keep = np.isin(test_split.labels, classes)
    images, labels = test_split.images[keep][:600], test_split.labels[keep][:600]
    big = np.stack(
        [np.asarray(Image.fromarray(i[..., 0]).convert("RGB").resize((64, 64), Image.BILINEAR)) for i in images]
    )
    assert big.shape[1:] == (64, 64, 3)
    member = engine.hub_member(hub, model_id, {})
    runner = engine.Engine([member], batch_size=128)
    accuracy = {}
    for name, x in {"28x28 grey": images, "64x64 RGB": big}.items():
        predicted = np.asarray(classes)[runner.probabilities(x)[model_id].argmax(1)]
        accuracy[name] = float((predicted == labels).mean())
    assert accuracy["28x28 grey"] > 0.8, accuracy
    assert accuracy["64x64 RGB"] > accuracy["28x28 grey"] - 0.03, accuracy
    with pytest.raises(ValueError, match="images must have shape"):
        mll.reuse(hub, mll.select(hub, ["sandal", "sneaker"]))(big[..., :2])
    assert preprocess(big[:1], member.input_spec).shape == (1, 28, 28, 1)
