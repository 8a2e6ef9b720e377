"""`cnn`: strided conv-ReLU blocks (batch norm optional), a dense layer, then the heads."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mll_jax.nets import ops
from mll_jax.nets.registry import register

__all__ = ["CNN"]


@register("cnn")
class CNN(nnx.Module):
    """Strided conv-ReLU blocks, then a dense layer and the heads.

    Strided convolutions rather than conv + max-pool: a stride-2 convolution
    computes a quarter of the outputs of a stride-1 one before pooling. `padding` is "SAME" (XLA's) or a
    symmetric integer (PyTorch's `padding=p`, for converted models). `batch_norm`
    puts an inference-mode batch norm (running statistics) after each conv, as in
    converted conv-BatchNorm2d-ReLU stacks; without it the parameters are as before.
    """

    def __init__(
        self,
        num_heads: int,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32),
        dense: int = 128,
        image_size: int = 28,
        kernel: int = 3,
        stride: int = 2,
        padding: str | int = "SAME",
        batch_norm: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        sizes = [in_channels, *channels]
        # the Conv modules hold the parameters (the checkpoint layout); `features` applies them with ops.conv2d
        self.stride, self.padding = stride, padding
        pad = padding if isinstance(padding, str) else ((padding, padding), (padding, padding))
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, (kernel, kernel), strides=stride, padding=pad, rngs=rngs)
                for a, b in zip(sizes[:-1], sizes[1:])
            ]
        )
        # None, not an empty list, without batch norm: the state (and so stored checkpoints) stays as it was.
        self.norms = (
            nnx.List([nnx.BatchNorm(c, use_running_average=True, epsilon=1e-5, rngs=rngs) for c in channels])
            if batch_norm
            else None
        )
        side = image_size
        for _ in channels:
            side = -(-side // stride) if isinstance(padding, str) else (side + 2 * padding - kernel) // stride + 1
        self.dense = nnx.Linear(side * side * channels[-1], dense, rngs=rngs)
        self.head = nnx.Linear(dense, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        wide = None if self.norms is None else jnp.float32  # a norm gets float32 sums (nets/precision.py)
        for i, conv in enumerate(self.convs):
            y = ops.conv2d(x, conv.kernel[...], conv.bias[...], self.stride, self.padding, sums_dtype=wide)
            x = jax.nn.relu(y if self.norms is None else self.norms[i](y).astype(x.dtype))
        return jax.nn.relu(self.dense(x.reshape(x.shape[0], -1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
