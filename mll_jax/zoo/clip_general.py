"""The general model from a converted CLIP: its image tower, with heads its own text tower writes.

`build` turns a Hugging Face CLIP (a local directory, or a Hub name the user asks
to download) into a hub model of the `clip-image` architecture: CLIP's vision tower
and projection, and one head per SDAG node whose weights are CLIP's text embedding
of a prompt naming the node, times CLIP's logit scale. Stored, labelled and run by
the engine like any hub model; the text tower is not kept.
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
from flax import nnx

from mll_jax import nets
from mll_jax.concepts.sdag import SDAG
from mll_jax.converters import hf_clip
from mll_jax.nets import clip
from mll_jax.nets.aligned import set_text_heads

__all__ = ["INPUT_SPEC", "build", "node_prompts"]

_PROMPT = "a photo of a {}."
INPUT_SPEC = {"mean": 0.0, "std": 1.0}  # images reach the tower in [0, 1]; it resizes and normalises them itself


def node_prompts(sdag: SDAG, nodes: list[str]) -> list[str]:
    return [_PROMPT.format(sdag.graph.nodes[v]["lemmas"][0]) for v in nodes]


def build(source: str, sdag: SDAG, input_spec: dict) -> tuple[clip.ClipImage, str, dict, list[str], dict]:
    """(model, arch, config, heads, input_spec) of the general model made from the CLIP at `source`."""
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
    model = nets.build("clip-image", config, len(nodes))
    nnx.update(model.vision, nnx.state(full.vision))
    nnx.update(model.visual_projection, nnx.state(full.visual_projection))
    set_text_heads(model, text, float(jnp.exp(full.logit_scale[...])))
    return model, "clip-image", config, nodes, {**input_spec, **INPUT_SPEC}
