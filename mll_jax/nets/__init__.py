"""Architectures: a registry by name (`registry`), and the modules that register into it.

Importing this package registers every architecture: `mlp`, `cnn`, `linear`,
`resnet`, `vit`, `clip-image`, `aligned`. BERT (MiniLM) and the full CLIP are
encoders used by name, not hub architectures.
"""

from mll_jax.nets import aligned, bert, clip, cnn, efficientnet_lite, linear, mlp, resnet, vit  # noqa: F401  (register)
from mll_jax.nets.registry import ARCHITECTURES, abstract, build, forward_flops, num_params, register

__all__ = ["ARCHITECTURES", "abstract", "build", "forward_flops", "num_params", "register"]
