"""Converters: checkpoints of other frameworks -> hub entries (architecture, config, parameters).

Each converter is a function `convert(tensors, input_spec, **layout) -> Converted`
registered by name (`registry`), and the command `mll-jax convert <name> PATH ...`. PATH is a
state_dict file, or a Hugging Face model directory (`config.json` plus
`model.safetensors`), whose config reaches the converter as `config=`.
Checkpoints are read as tensors only (safetensors, or
`torch.load(weights_only=True)`): no code from a file ever runs.
"""

from mll_jax.converters import (  # noqa: F401  (register)
    efficientnet_lite,
    hf_resnet,
    hf_vit,
    torch_sequential,
    torchvision_resnet,
)
from mll_jax.converters.registry import CONVERTERS, add_to_hub, convert, register
from mll_jax.converters.tensors import Converted

__all__ = ["CONVERTERS", "Converted", "add_to_hub", "convert", "register"]
