import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mll_jax.nets import ops


def xla_conv(x, kernel, stride, padding):
    pads = padding if isinstance(padding, str) else [(padding, padding)] * 2
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))


# the demo CNNs' convolutions, odd sizes (XLA's SAME pads the extra row after), PyTorch's int padding, VALID
@pytest.mark.parametrize(
    "size, k, stride, padding",
    [(28, 3, 2, "SAME"), (27, 3, 2, "SAME"), (7, 5, 3, "SAME"), (27, 1, 1, "VALID"), (28, 3, 2, 1), (7, 3, 1, 2)],
)
@pytest.mark.parametrize("channels", [1, 4])  # 1: summed slices (ops.FEW_CHANNELS) with the matmul's gradient
def test_conv2d_equals_xla_convolution_and_its_gradients(size, k, stride, padding, channels):
    rng = np.random.default_rng(size * 100 + k * 10 + stride)
    x = jnp.asarray(rng.normal(size=(3, size, size, channels)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, channels, 5)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=5), jnp.float32)
    ours = jax.jit(lambda x, w, b: ops.conv2d(x, w, b, stride, padding))
    reference = xla_conv(x, kernel, stride, padding) + bias
    assert ours(x, kernel, bias).shape == reference.shape
    np.testing.assert_allclose(ours(x, kernel, bias), reference, atol=1e-4)
    grads = jax.jit(jax.grad(lambda x, w: (ours(x, w, bias) ** 2).sum(), argnums=(0, 1)))(x, kernel)
    reference_loss = lambda x, w: ((xla_conv(x, w, stride, padding) + bias) ** 2).sum()  # noqa: E731
    expected = jax.jit(jax.grad(reference_loss, argnums=(0, 1)))(x, kernel)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3, 16])  # summed slices (1, 3) and the matmul (16)
def test_conv2d_under_vmap_and_in_bfloat16_accumulating_in_float32(channels):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 14, 14, channels)), jnp.float32)
    kernels = jnp.asarray(rng.normal(size=(4, 3, 3, channels, 8)), jnp.float32)
    stacked = jax.vmap(lambda w: ops.conv2d(x, w, None, 2, "SAME"))(kernels)
    for w, y in zip(kernels, stacked):
        np.testing.assert_allclose(y, xla_conv(x, w, 2, "SAME"), atol=1e-4)
    x_low, w_low = x.astype(jnp.bfloat16), kernels[0].astype(jnp.bfloat16)
    low = jax.jit(lambda x, w: ops.conv2d(x, w, None, 2, "SAME"))(x_low, w_low)
    assert low.dtype == jnp.bfloat16
    # the float32 sums of the bfloat16 inputs, rounded once (bfloat16 keeps 8 significant bits)
    exact = xla_conv(x_low.astype(jnp.float32), w_low.astype(jnp.float32), 2, "SAME")
    np.testing.assert_allclose(low.astype(jnp.float32), exact, rtol=2**-8, atol=1e-5)
    wide = jax.jit(lambda x, w: ops.conv2d(x, w, None, 2, "SAME", sums_dtype=jnp.float32))(x_low, w_low)
    assert wide.dtype == jnp.float32  # the sums unrounded, for a batch norm
    np.testing.assert_allclose(wide, exact, rtol=1e-5, atol=1e-5)


def test_conv2d_names_a_padding_it_does_not_know():
    with pytest.raises(ValueError, match="padding must be 'SAME', 'VALID' or an int, got 'FULL'"):
        ops.conv2d(jnp.zeros((1, 8, 8, 1)), jnp.zeros((3, 3, 1, 2)), None, 1, "FULL")


# EfficientNet-Lite's depthwise convolutions: 3x3 and 5x5, stride 1 and 2, even and odd sizes
@pytest.mark.parametrize("size, k, stride", [(14, 3, 1), (15, 5, 2), (8, 5, 1), (7, 3, 2)])
def test_depthwise_conv2d_equals_xla_grouped_convolution(size, k, stride):
    rng = np.random.default_rng(size * 100 + k * 10 + stride)
    x = jnp.asarray(rng.normal(size=(2, size, size, 6)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, 1, 6)), jnp.float32)
    ours = jax.jit(lambda x, w: ops.conv2d(x, w, None, stride, "SAME", groups=6))(x, kernel)
    reference = jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6
    )
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    x_low, w_low = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
    low = jax.jit(lambda x, w: ops.conv2d(x, w, None, stride, "SAME", groups=6))(x_low, w_low)
    exact = jax.jit(lambda x, w: ops.conv2d(x, w, None, stride, "SAME", groups=6))(
        x_low.astype(jnp.float32), w_low.astype(jnp.float32)
    )
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(low.astype(jnp.float32), exact, rtol=2**-8, atol=1e-5)  # one rounding


def test_conv2d_refuses_groups_it_does_not_compute():
    with pytest.raises(ValueError, match=r"groups 1 or 4 \(depthwise"):
        ops.conv2d(jnp.zeros((1, 8, 8, 4)), jnp.zeros((3, 3, 2, 4)), None, 1, "SAME", groups=2)


def test_forward_flops_are_xlas_count_from_the_architecture_alone():
    from mll_jax import nets

    # a linear layer of 10 inputs and 3 heads: 2 * 10 * 3 multiply-adds and 3 bias additions an image
    assert nets.forward_flops("linear", {"in_features": 10}, 3, (10,)) == 63
    # EfficientNet-Lite0 at 224x224: about 0.4 G multiply-adds, as published (407 M), counted twice
    lite0 = nets.forward_flops("efficientnet_lite", {"width": 1.0, "depth": 1.0}, 1000, (224, 224, 3))
    assert 0.78e9 < lite0 < 0.84e9
    features = nets.forward_flops("efficientnet_lite", {"width": 1.0, "depth": 1.0}, 1000, (224, 224, 3), True)
    assert lite0 - features == pytest.approx(2 * 1280 * 1000 + 1000, rel=0.01)  # the heads' matmul
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        nets.forward_flops("nope", {}, 3, (10,))
