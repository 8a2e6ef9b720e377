"""Vision Transformer (ViT) image classifier in Flax NNX, and the pre-norm transformer pieces CLIP shares.

Inference layout of Hugging Face's `ViTForImageClassification`: patch embedding (a strided
conv), a CLS token, learned position embeddings, pre-norm transformer blocks, a final
layernorm; the classifier reads the normed CLS state. Images are NHWC float32, already
normalised. No dropout: these models are converted, then run.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from mll_jax.nets.bert import attention
from mll_jax.nets.registry import register

__all__ = ["Block", "Patches", "ViT", "blocks", "check_activation", "layer_norm", "quick_gelu"]


def quick_gelu(x: jax.Array) -> jax.Array:
    """CLIP's sigmoid approximation of GELU (Hugging Face `quick_gelu`)."""
    return x * jax.nn.sigmoid(1.702 * x)


# Hugging Face `hidden_act` names; "gelu" there is the exact (erf) GELU.
_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "quick_gelu": quick_gelu,
}


def check_activation(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise ValueError(f"hidden_act {name!r} is not supported; known: {sorted(_ACTIVATIONS)}")
    return name


def layer_norm(hidden: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # Two-pass variance, as PyTorch computes it (and as bert.py does), for parity with converted weights.
    return nnx.LayerNorm(hidden, epsilon=eps, use_fast_variance=False, rngs=rngs)


class Block(nnx.Module):
    """Pre-norm transformer layer: x + attention(norm1(x)), then x + fc2(act(fc1(norm2(x))))."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        intermediate: int,
        eps: float,
        act: str = "gelu",
        qkv_bias: bool = True,
        *,
        rngs: nnx.Rngs,
    ):
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of the {heads} attention heads")
        self.heads = heads
        self.act = check_activation(act)  # a name, not a function: the module's structure stays plain data
        self.norm1 = layer_norm(hidden, eps, rngs)
        self.query = nnx.Linear(hidden, hidden, use_bias=qkv_bias, rngs=rngs)
        self.key = nnx.Linear(hidden, hidden, use_bias=qkv_bias, rngs=rngs)
        self.value = nnx.Linear(hidden, hidden, use_bias=qkv_bias, rngs=rngs)
        self.attention_out = nnx.Linear(hidden, hidden, rngs=rngs)
        self.norm2 = layer_norm(hidden, eps, rngs)
        self.fc1 = nnx.Linear(hidden, intermediate, rngs=rngs)
        self.fc2 = nnx.Linear(intermediate, hidden, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """[B, T, H] -> [B, T, H]; `mask` (True = attend) broadcasts to [B, heads, T, T]."""
        h = self.norm1(x)
        x = x + self.attention_out(attention(self.query(h), self.key(h), self.value(h), self.heads, mask))
        return x + self.fc2(_ACTIVATIONS[self.act](self.fc1(self.norm2(x))))


def blocks(
    hidden: int, layers: int, heads: int, intermediate: int, eps: float, act: str, rngs: nnx.Rngs, qkv_bias: bool = True
) -> nnx.List:
    """`layers` pre-norm blocks: a ViT's encoder, or one of CLIP's towers."""
    return nnx.List([Block(hidden, heads, intermediate, eps, act, qkv_bias, rngs=rngs) for _ in range(layers)])


class Patches(nnx.Module):
    """Images [B, S, S, C] -> tokens [B, 1 + (S/P)^2, H]: patch conv, CLS token first, position embeddings added."""

    def __init__(self, image_size: int, patch_size: int, channels: int, hidden: int, bias: bool, *, rngs: nnx.Rngs):
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.image_size = image_size
        p = patch_size
        self.conv = nnx.Conv(channels, hidden, (p, p), strides=(p, p), padding="VALID", use_bias=bias, rngs=rngs)
        init = nnx.initializers.truncated_normal(0.02)
        self.cls = nnx.Param(init(rngs.params(), (hidden,)))
        self.positions = nnx.Param(init(rngs.params(), ((image_size // p) ** 2 + 1, hidden)))

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"images are {x.shape[1]}x{x.shape[2]}; the model takes {self.image_size}x{self.image_size}"
            )
        patches = self.conv(x)
        patches = patches.reshape(x.shape[0], -1, patches.shape[-1])  # row-major patches, as PyTorch's flatten(2)
        cls = jnp.broadcast_to(self.cls[...], (x.shape[0], 1, patches.shape[-1]))
        return jnp.concatenate([cls, patches], axis=1) + self.positions[...]


@register("vit")
class ViT(nnx.Module):
    """ViT classifier; the config is Hugging Face's `ViTConfig` fields (defaults: ViT-Base/16 at 224)."""

    def __init__(
        self,
        num_heads: int,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        layer_norm_eps: float = 1e-12,
        qkv_bias: bool = True,
        hidden_act: str = "gelu",
        *,
        rngs: nnx.Rngs,
    ):
        self.embeddings = Patches(image_size, patch_size, num_channels, hidden_size, bias=True, rngs=rngs)
        self.layers = blocks(
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            layer_norm_eps,
            hidden_act,
            rngs,
            qkv_bias,
        )
        self.norm = layer_norm(hidden_size, layer_norm_eps, rngs)
        self.head = nnx.Linear(hidden_size, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The normed CLS state [B, hidden_size] of images [B, S, S, C]."""
        x = self.embeddings(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x[:, 0])  # layernorm is per token: norming the CLS state alone is the same

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
