"""A BERT-family text encoder in Flax NNX (MiniLM and friends), mapping token ids to hidden states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mll_jax.nets.ops import unit_norm

__all__ = ["Bert", "Layer", "attention", "mean_pool"]


def attention(q: jax.Array, k: jax.Array, v: jax.Array, heads: int, mask: jax.Array | None = None) -> jax.Array:
    """Multi-head scaled dot-product attention on projected q, k, v [B, T, H] -> [B, T, H].

    `mask` (True = attend) broadcasts to [B, heads, T_query, T_key]: [B, 1, 1, T] for padding, [1, 1, T, T] causal.
    """
    B, T, H = q.shape
    split = lambda y: y.reshape(B, y.shape[1], heads, H // heads)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(H // heads)
    if mask is not None:
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, -1), v).reshape(B, T, H)


class Layer(nnx.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float, *, rngs: nnx.Rngs):
        self.heads = heads
        self.query = nnx.Linear(hidden, hidden, rngs=rngs)
        self.key = nnx.Linear(hidden, hidden, rngs=rngs)
        self.value = nnx.Linear(hidden, hidden, rngs=rngs)
        self.attention_out = nnx.Linear(hidden, hidden, rngs=rngs)
        self.attention_norm = nnx.LayerNorm(hidden, epsilon=eps, use_fast_variance=False, rngs=rngs)
        self.intermediate = nnx.Linear(hidden, intermediate, rngs=rngs)
        self.output = nnx.Linear(intermediate, hidden, rngs=rngs)
        self.output_norm = nnx.LayerNorm(hidden, epsilon=eps, use_fast_variance=False, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        context = attention(self.query(x), self.key(x), self.value(x), self.heads, mask[:, None, None, :])
        x = self.attention_norm(x + self.attention_out(context))
        return self.output_norm(x + self.output(jax.nn.gelu(self.intermediate(x), approximate=False)))


class Bert(nnx.Module):
    """Embeddings, then `layers` transformer layers (post-norm, as in BERT)."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_hidden_layers: int,
        num_attention_heads: int,
        intermediate_size: int,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        *,
        rngs: nnx.Rngs,
    ):
        self.word = nnx.Embed(vocab_size, hidden_size, rngs=rngs)
        self.position = nnx.Embed(max_position_embeddings, hidden_size, rngs=rngs)
        self.token_type = nnx.Embed(type_vocab_size, hidden_size, rngs=rngs)
        self.embedding_norm = nnx.LayerNorm(hidden_size, epsilon=layer_norm_eps, use_fast_variance=False, rngs=rngs)
        self.layers = nnx.List(
            [
                Layer(hidden_size, num_attention_heads, intermediate_size, layer_norm_eps, rngs=rngs)
                for _ in range(num_hidden_layers)
            ]
        )

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        """Hidden states [B, T, H] for token ids [B, T] and attention mask [B, T] (1 = token)."""
        positions = jnp.arange(ids.shape[1])[None]
        x = self.word(ids) + self.position(positions) + self.token_type(jnp.zeros_like(ids))
        x = self.embedding_norm(x)
        for layer in self.layers:
            x = layer(x, mask.astype(bool))
        return x


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of the token states over real tokens, L2-normalised (the sentence-transformers recipe)."""
    mask = mask.astype(hidden.dtype)[..., None]
    pooled = (hidden * mask).sum(1) / jnp.maximum(mask.sum(1), 1e-9)
    return unit_norm(pooled)
