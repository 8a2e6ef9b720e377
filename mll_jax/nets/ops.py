"""Small functions several architectures share."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["conv2d", "unit_norm"]


def unit_norm(x: jax.Array) -> jax.Array:
    """`x` scaled to unit L2 norm along the last axis (a zero vector stays zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, stride: int, padding: str | int) -> jax.Array:
    """A 2-D convolution of NHWC `x` with an HWIO `kernel`, `padding` "SAME", "VALID" or PyTorch's symmetric int.

    XLA's convolution, except on CPU: there it is one matmul over the kernel's
    strided slices of the padded input, the same sums in another order. XLA's CPU
    convolution gradients made a training step of the demo's CNNs 9x slower, and
    its forward pass 1.8x slower under vmap (both measured at batch 128-512).
    """
    pads = tuple(_pads(size, kernel.shape[i], stride, padding) for i, size in enumerate(x.shape[1:3]))
    y = jax.lax.platform_dependent(
        x,
        kernel,
        cpu=functools.partial(_by_slices, stride=stride, pads=pads),
        default=functools.partial(_by_xla, stride=stride, pads=pads),
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


def _by_xla(x, kernel, *, stride, pads):
    dims = ("NHWC", "HWIO", "NHWC")
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=dims)


def _by_slices(x, kernel, *, stride, pads):
    kh, kw, c_in, c_out = kernel.shape
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    slices = [
        x[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.concatenate(slices, axis=-1) @ kernel.reshape(kh * kw * c_in, c_out)
