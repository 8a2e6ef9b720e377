"""CLIP in Flax NNX: a vision tower and a text tower projected into one embedding space.

Inference layout of Hugging Face's `CLIPModel` (`mll_jax.converters.hf_clip` loads its
weights). Both towers stack the pre-norm `vit.Block`; the vision tower embeds patches like
ViT (conv without bias) and layernorms before and after the blocks, the text tower is
causal and pools at the end-of-text token. Images are NHWC float32, already normalised
(CLIP's per-channel mean and std).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mll_jax.nets.ops import unit_norm
from mll_jax.nets.registry import register
from mll_jax.nets.vit import Patches, blocks, check_activation, layer_norm

__all__ = ["Clip", "ClipImage", "TextTower", "VisionTower", "pixels"]

# Configs written before transformers PR #24773 say eos_token_id=2; Hugging Face then pools at the
# largest token id (the end-of-text token is the last in CLIP's vocabulary). Matched here.
_LEGACY_EOS_TOKEN_ID = 2


class VisionTower(nnx.Module):
    """Images [B, S, S, C] -> pooled states [B, hidden_size]: the post-layernormed CLS state.

    Arguments are Hugging Face `CLIPVisionConfig` fields, with its defaults (ViT-B/32).
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 32,
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        layer_norm_eps: float = 1e-5,
        hidden_act: str = "quick_gelu",
        *,
        rngs: nnx.Rngs,
    ):
        check_activation(hidden_act)
        self.embeddings = Patches(image_size, patch_size, num_channels, hidden_size, bias=False, rngs=rngs)
        self.pre_norm = layer_norm(hidden_size, layer_norm_eps, rngs)
        self.layers = blocks(
            hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, layer_norm_eps, hidden_act, rngs
        )
        self.post_norm = layer_norm(hidden_size, layer_norm_eps, rngs)

    def __call__(self, pixels: jax.Array) -> jax.Array:
        x = self.pre_norm(self.embeddings(pixels))
        for layer in self.layers:
            x = layer(x)
        return self.post_norm(x[:, 0])


class TextTower(nnx.Module):
    """Token ids [B, T] and attention mask [B, T] -> pooled states [B, hidden_size] at the end-of-text token.

    Arguments are Hugging Face `CLIPTextConfig` fields, with its defaults.
    """

    def __init__(
        self,
        vocab_size: int = 49408,
        hidden_size: int = 512,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 8,
        intermediate_size: int = 2048,
        max_position_embeddings: int = 77,
        layer_norm_eps: float = 1e-5,
        hidden_act: str = "quick_gelu",
        eos_token_id: int = 49407,
        *,
        rngs: nnx.Rngs,
    ):
        check_activation(hidden_act)
        self.eos_token_id = eos_token_id
        self.max_positions = max_position_embeddings
        self.token = nnx.Embed(vocab_size, hidden_size, rngs=rngs)
        self.position = nnx.Embed(max_position_embeddings, hidden_size, rngs=rngs)
        self.layers = blocks(
            hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, layer_norm_eps, hidden_act, rngs
        )
        self.final_norm = layer_norm(hidden_size, layer_norm_eps, rngs)

    def pool_index(self, ids: jax.Array) -> jax.Array:
        """Per row, the position whose state is pooled, chosen as Hugging Face's `CLIPTextModel` does."""
        if self.eos_token_id == _LEGACY_EOS_TOKEN_ID:
            return jnp.argmax(ids, axis=-1)
        # The first end-of-text token: padding may reuse its id. A row without one pools position 0, as in HF.
        return jnp.argmax((ids == self.eos_token_id).astype(jnp.int32), axis=-1)

    def __call__(self, ids: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        batch, length = ids.shape
        if length > self.max_positions:
            raise ValueError(f"{length} tokens; the text tower takes at most {self.max_positions}")
        x = self.token(ids) + self.position(jnp.arange(length)[None])
        attend = jnp.tril(jnp.ones((length, length), bool))[
            None, None
        ]  # causal: a token sees itself and those before it
        if mask is not None:
            attend = attend & mask.astype(bool)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attend)
        x = self.final_norm(x)
        return x[jnp.arange(batch), self.pool_index(ids)]


class Clip(nnx.Module):
    """CLIP: `vision` and `text` are the towers' arguments (HF vision_config / text_config fields)."""

    def __init__(
        self,
        vision: dict | None = None,
        text: dict | None = None,
        projection_dim: int = 512,
        logit_scale_init_value: float = 2.6592,
        *,
        rngs: nnx.Rngs,
    ):
        self.vision = VisionTower(**(vision or {}), rngs=rngs)
        self.text = TextTower(**(text or {}), rngs=rngs)
        vision_hidden = self.vision.post_norm.scale.shape[0]
        text_hidden = self.text.final_norm.scale.shape[0]
        self.visual_projection = nnx.Linear(vision_hidden, projection_dim, use_bias=False, rngs=rngs)
        self.text_projection = nnx.Linear(text_hidden, projection_dim, use_bias=False, rngs=rngs)
        self.logit_scale = nnx.Param(jnp.asarray(logit_scale_init_value, jnp.float32))  # log of the temperature

    def image_embeddings(self, pixels: jax.Array) -> jax.Array:
        """Normalised images [B, S, S, C] (NHWC float32) -> unit-norm embeddings [B, projection_dim]."""
        return unit_norm(self.visual_projection(self.vision(pixels)))

    def text_embeddings(self, ids: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Token ids [B, T], each row with its end-of-text token, and mask [B, T] (1 = token) -> unit-norm [B, P]."""
        return unit_norm(self.text_projection(self.text(ids, mask)))

    def __call__(self, pixels: jax.Array, ids: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """logits_per_image [B_images, B_texts]: scaled cosine similarities, as Hugging Face's `CLIPModel`."""
        similarity = self.image_embeddings(pixels) @ self.text_embeddings(ids, mask).T
        return similarity * jnp.exp(self.logit_scale[...])


_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image normalisation
_STD = (0.26862954, 0.26130258, 0.27577711)


@register("clip-image")
class ClipImage(nnx.Module):
    """CLIP's image side: images [B, H, W, 1 or 3] in [0, 1] -> unit embeddings (`features`) -> node heads."""

    def __init__(self, num_heads: int, vision: dict, projection_dim: int, *, rngs: nnx.Rngs):
        self.vision = VisionTower(**vision, rngs=rngs)
        self.image_size = vision.get("image_size", 224)
        hidden = self.vision.post_norm.scale.shape[0]
        self.visual_projection = nnx.Linear(hidden, projection_dim, use_bias=False, rngs=rngs)
        self.head = nnx.Linear(projection_dim, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        return unit_norm(self.visual_projection(self.vision(pixels(x, self.image_size))))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


def pixels(x: jax.Array, size: int) -> jax.Array:
    """Images [B, H, W, 1 or 3] in [0, 1] -> CLIP's input: resized to `size`, three channels, normalised."""
    x = jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "bilinear")
    if x.shape[-1] == 1:  # grey images: the same value in every colour channel
        x = jnp.repeat(x, 3, axis=-1)
    return (x - jnp.asarray(_MEAN)) / jnp.asarray(_STD)
