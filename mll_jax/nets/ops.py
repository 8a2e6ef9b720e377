"""Small functions several architectures share."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["conv2d", "unit_norm"]

# Input channels up to which a dense convolution on CPU sums scaled slices instead of one matmul (forward only:
# differentiated it is the matmul). A 3x3 stride-2 convolution at batch 32 took 41 against 137 us with 1 input
# channel (28 px, to 16 channels), 86 against 153 us with 3 (32 px), 18 against 43 ms with 3 at 224 px to 32
# channels (EfficientNet-Lite's stem), 146 against 129 us with 4, and 364 against 103 us with 16.
FEW_CHANNELS = 3


def unit_norm(x: jax.Array) -> jax.Array:
    """`x` scaled to unit L2 norm along the last axis (a zero vector stays zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None,
    stride: int,
    padding: str | int,
    groups: int = 1,
    sums_dtype: jax.typing.DTypeLike | None = None,
) -> jax.Array:
    """A 2-D convolution of NHWC `x` with an HWIO `kernel`, `padding` "SAME", "VALID" or PyTorch's symmetric int;
    `groups` 1 (dense) or the channel count (depthwise, `kernel` k x k x 1 x C); the result in `sums_dtype`
    (default: the inputs' dtype; float32 hands a bfloat16 convolution's sums unrounded to a batch norm).

    XLA's convolution, except on CPU: there a dense one is one matmul over the
    kernel's strided slices of the padded input (with at most `FEW_CHANNELS` input
    channels, a sum of the slices' channels scaled by their kernel rows), and a
    depthwise one a sum of those slices scaled per channel: the same sums in another
    order. XLA's CPU convolution gradients made a training step of the demo's CNNs 9x
    slower, and its forward pass 1.8x slower under vmap (both measured at batch
    128-512); its depthwise convolutions ran 12-40x slower than the sum of slices, and its 1x1 ones 1.3-6x
    slower than the matmul (EfficientNet-Lite0's layers at batch 32, 224 px).
    On CPU the sums accumulate in float32 for bfloat16 inputs too, as XLA's
    convolutions on accelerators do.
    """
    channels = x.shape[-1]
    if groups not in (1, channels) or (groups > 1 and kernel.shape[2:] != (1, channels)):
        raise ValueError(
            f"conv2d takes groups 1 or {channels} (depthwise, a kernel of shape (k, k, 1, {channels})); "
            f"got groups {groups} with a kernel of shape {kernel.shape}"
        )
    pads = tuple(_pads(size, kernel.shape[i], stride, padding) for i, size in enumerate(x.shape[1:3]))
    on_cpu = _depthwise_by_slices if groups > 1 else _by_slices
    out = jnp.dtype(sums_dtype or jnp.result_type(x, kernel))
    y = jax.lax.platform_dependent(
        x,
        kernel,
        cpu=functools.partial(on_cpu, stride=stride, pads=pads, out=out),
        default=functools.partial(_by_xla, stride=stride, pads=pads, groups=groups, out=out),
    )
    return y if bias is None else y + bias


def _pads(size: int, k: int, stride: int, padding: str | int) -> tuple[int, int]:
    """(before, after) padding of one spatial axis, as XLA pads "SAME" (the extra one after)."""
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        return total // 2, total - total // 2
    if isinstance(padding, int):
        return padding, padding
    raise ValueError(f"padding must be 'SAME', 'VALID' or an int, got {padding!r}")


def _by_xla(x, kernel, *, stride, pads, groups, out):
    dims = ("NHWC", "HWIO", "NHWC")
    common = jnp.result_type(x, kernel)  # XLA takes one dtype: a float32 kernel (nets/precision.py) widens x
    return jax.lax.conv_general_dilated(
        x.astype(common), kernel.astype(common), (stride, stride), pads, dimension_numbers=dims,
        feature_group_count=groups, preferred_element_type=out,
    )  # fmt: skip


def _slices(x, kh: int, kw: int, stride: int, pads) -> list[jax.Array]:
    """The padded input's strided slices, one per kernel position (row-major)."""
    if pads != ((0, 0), (0, 0)):
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    return [
        x[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]


def _by_slices(x, kernel, *, stride, pads, out):
    if kernel.shape[2] <= FEW_CHANNELS:
        return _by_channel_sums(x, kernel, stride, pads, out)
    return _by_matmul(x, kernel, stride, pads, out)


def _by_matmul(x, kernel, stride: int, pads, out):
    kh, kw, c_in, c_out = kernel.shape
    slices = _slices(x, kh, kw, stride, pads)
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)
    sums = jnp.matmul(patches, kernel.reshape(kh * kw * c_in, c_out), preferred_element_type=jnp.float32)
    return sums.astype(out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _by_channel_sums(x, kernel, stride: int, pads, out):
    """`_by_matmul` as a sum of each slice's channels scaled by their kernel rows: one fused loop, where the
    matmul's inner dimension (9 or 27) is too short to pay for concatenating the slices. Differentiated, it is
    the matmul, forward and backward (the sums' own gradient took a training epoch 1.1-1.6x as long), so
    training computes exactly what it did before."""
    kh, kw, c_in, c_out = kernel.shape
    rows = _wide(kernel).reshape(kh * kw, c_in, c_out)
    slices = _slices(_wide(x), kh, kw, stride, pads)
    return sum(s[..., c : c + 1] * w[c] for s, w in zip(slices, rows) for c in range(c_in)).astype(out)


def _channel_sums_forward(x, kernel, stride, pads, out):
    return jax.vjp(lambda x, kernel: _by_matmul(x, kernel, stride, pads, out), x, kernel)


def _channel_sums_backward(stride, pads, out, pullback, cotangent):
    return pullback(cotangent)


_by_channel_sums.defvjp(_channel_sums_forward, _channel_sums_backward)


def _depthwise_by_slices(x, kernel, *, stride, pads, out):
    kh, kw = kernel.shape[:2]
    weights = _wide(kernel).reshape(kh * kw, -1)
    return sum(s * w for s, w in zip(_slices(_wide(x), kh, kw, stride, pads), weights)).astype(out)


def _wide(x: jax.Array) -> jax.Array:
    """`x` in float32 if narrower: the CPU sums accumulate in float32, as XLA's convolutions do elsewhere."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))
