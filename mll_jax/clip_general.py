"""The general model from a converted CLIP: its image tower, with heads its own text tower writes.

`build` turns a Hugging Face CLIP (a local directory, or a Hub name the user asks
to download) into a hub model of the `clip-image` architecture: CLIP's vision tower
and projection, and one head per SDAG node whose weights are CLIP's text embedding
of a prompt naming the node, times CLIP's logit scale. Stored, labelled and run by
the engine like any hub model; the text tower is not kept.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax import clip, general, models
from mll_jax.sdag import SDAG

MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image normalisation
STD = (0.26862954, 0.26130258, 0.27577711)
PROMPT = "a photo of a {}."
INPUT_SPEC = {"mean": 0.0, "std": 1.0}  # images reach the tower in [0, 1]; it resizes and normalises them itself


@models.register("clip-image")
class ClipImage(nnx.Module):
    """CLIP's image side: images [B, H, W, 1 or 3] in [0, 1] -> unit embeddings (`features`) -> node heads."""

    def __init__(self, num_heads: int, vision: dict, projection_dim: int, *, rngs: nnx.Rngs):
        self.vision = clip.VisionTower(**vision, rngs=rngs)
        self.image_size = vision.get("image_size", 224)
        hidden = self.vision.post_norm.scale.shape[0]
        self.visual_projection = nnx.Linear(hidden, projection_dim, use_bias=False, rngs=rngs)
        self.head = nnx.Linear(projection_dim, num_heads, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        return clip.normalize(self.visual_projection(self.vision(pixels(x, self.image_size))))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


def pixels(x: jax.Array, size: int) -> jax.Array:
    """Images [B, H, W, 1 or 3] in [0, 1] -> CLIP's input: resized to `size`, three channels, normalised."""
    x = jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "bilinear")
    if x.shape[-1] == 1:  # grey images: the same value in every colour channel
        x = jnp.repeat(x, 3, axis=-1)
    return (x - jnp.asarray(MEAN)) / jnp.asarray(STD)


def node_prompts(sdag: SDAG, nodes: list[str]) -> list[str]:
    return [PROMPT.format(sdag.graph.nodes[v]["lemmas"][0]) for v in nodes]


def build(source: str, sdag: SDAG, input_spec: dict) -> tuple[ClipImage, str, dict, list[str], dict]:
    """(model, arch, config, heads, input_spec) of the general model made from the CLIP at `source`."""
    from mll_jax.converters import hf_clip

    directory = hf_clip.local_directory(source)
    full, tokenizer = hf_clip.load(directory)
    hf_config = json.loads((directory / "config.json").read_text())
    nodes = sorted(sdag.graph)
    ids, mask = hf_clip.tokenize(tokenizer, node_prompts(sdag, nodes))
    text = np.asarray(full.text_embeddings(jnp.asarray(ids), jnp.asarray(mask)))
    config = {
        "vision": hf_clip.tower_config(hf_config, "vision", clip.VisionTower),
        "projection_dim": int(full.visual_projection.out_features),
    }
    model = models.build("clip-image", config, len(nodes))
    nnx.update(model.vision, nnx.state(full.vision))
    nnx.update(model.visual_projection, nnx.state(full.visual_projection))
    general.set_text_heads(model, text, float(jnp.exp(full.logit_scale[...])))
    return model, "clip-image", config, nodes, {**input_spec, **INPUT_SPEC}
