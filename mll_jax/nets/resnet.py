"""ResNet (He et al. 2016) in Flax NNX, laid out as torchvision's and Hugging Face's ResNets.

Batch norm runs in inference mode (running statistics, PyTorch's epsilon 1e-5), and
every convolution pads symmetrically by `kernel // 2` as PyTorch does, so converted
checkpoints give PyTorch's outputs. `widths` are torchvision's per-stage widths:
a bottleneck block's 3x3 convolution has `width` channels and its output `4 * width`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from mll_jax.nets.registry import register

__all__ = ["Block", "ConvBN", "EXPANSION", "LAYOUTS", "ResNet"]

EXPANSION = {"basic": 1, "bottleneck": 4}  # a block's output channels per unit of width
_STEMS = ("torchvision",)

LAYOUTS = {
    "resnet18": {"block": "basic", "depths": [2, 2, 2, 2]},
    "resnet34": {"block": "basic", "depths": [3, 4, 6, 3]},
    "resnet50": {"block": "bottleneck", "depths": [3, 4, 6, 3]},
}


class ConvBN(nnx.Module):
    """A bias-free convolution and its batch norm (PyTorch's conv + BatchNorm2d pair)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs):
        pad = kernel // 2  # PyTorch's padding=k//2 on both sides; XLA's "SAME" would pad stride-2 convs asymmetrically
        self.conv = nnx.Conv(
            in_channels,
            out_channels,
            (kernel, kernel),
            strides=stride,
            padding=((pad, pad), (pad, pad)),
            use_bias=False,
            rngs=rngs,
        )
        self.norm = nnx.BatchNorm(out_channels, use_running_average=True, epsilon=1e-5, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(self.conv(x)).astype(x.dtype)  # a float32 norm rounds to x's dtype (nets/precision.py)


class Block(nnx.Module):
    """A residual block: basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1), with a 1x1 projection shortcut
    where the shape changes."""

    def __init__(
        self,
        block: str,
        in_channels: int,
        width: int,
        stride: int,
        downsample_in_bottleneck: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        out = width * EXPANSION[block]
        if block == "basic":
            self.layers = nnx.List(
                [ConvBN(in_channels, width, 3, stride, rngs=rngs), ConvBN(width, width, 3, rngs=rngs)]
            )
        else:
            # torchvision (v1.5) and HF by default stride the 3x3 conv; the original v1 strides the first 1x1.
            first, middle = (stride, 1) if downsample_in_bottleneck else (1, stride)
            self.layers = nnx.List(
                [
                    ConvBN(in_channels, width, 1, first, rngs=rngs),
                    ConvBN(width, width, 3, middle, rngs=rngs),
                    ConvBN(width, out, 1, rngs=rngs),
                ]
            )
        self.shortcut = ConvBN(in_channels, out, 1, stride, rngs=rngs) if stride != 1 or in_channels != out else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        for i, layer in enumerate(self.layers):
            y = layer(y)
            if i < len(self.layers) - 1:  # the last layer's ReLU comes after the residual sum
                y = jax.nn.relu(y)
        return jax.nn.relu(y + (x if self.shortcut is None else self.shortcut(x)))


@register("resnet")
class ResNet(nnx.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), residual stages, global average pool, heads.

    Stage 1 keeps the resolution unless `downsample_in_first_stage`; every later stage halves it.
    """

    def __init__(
        self,
        num_heads: int,
        block: str = "basic",
        depths: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int = 64,
        in_channels: int = 3,
        stem: str = "torchvision",
        downsample_in_first_stage: bool = False,
        downsample_in_bottleneck: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        if block not in EXPANSION:
            raise ValueError(f"block {block!r} is not one of {sorted(EXPANSION)}")
        if stem not in _STEMS:
            raise ValueError(f"stem {stem!r} is not one of {list(_STEMS)}")
        if len(depths) != len(widths) or not depths:
            raise ValueError(f"depths {list(depths)} and widths {list(widths)} must list the same (>= 1) stages")
        self.stem = ConvBN(in_channels, stem_width, 7, 2, rngs=rngs)
        stages, channels = [], stem_width
        for s, (depth, width) in enumerate(zip(depths, widths)):
            stride = 2 if s > 0 or downsample_in_first_stage else 1
            blocks = []
            for b in range(depth):
                first = stride if b == 0 else 1
                blocks.append(Block(block, channels, width, first, downsample_in_bottleneck, rngs=rngs))
                channels = width * EXPANSION[block]
            stages.append(nnx.List(blocks))
        self.stages = nnx.List(stages)
        self.head = nnx.Linear(channels, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.stem(x))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # pads with -inf, as PyTorch
        for stage in self.stages:
            for block in stage:
                x = block(x)
        return x.mean(axis=(1, 2))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
