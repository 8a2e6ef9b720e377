"""Mixed precision: the parameters that stay float32 when a model runs in a narrower dtype (bfloat16).

Batch norms keep theirs. In inference mode a batch norm subtracts a running mean
from convolution sums of about the same size: rounded to bfloat16's 8 significant
bits, mean and sums leave that difference few digits. EfficientNet-Lite and the
CNN hand a batch norm their convolution's float32 sums and round only its output;
ResNet keeps XLA's convolution, which rounds its sums first (through `ops.conv2d`
ResNet-18 ran half as fast on CPU, batch 32, float32). Chosen on
1,000 open-world development images: the EfficientNet-Lites' top-1 in bfloat16
agreed with float32 on 0.907, 0.909 and 0.859 of them (lite0, 1, 2) with every
parameter in bfloat16, and on 0.934, 0.915 and 0.856 so; bfloat16 also ran faster
on CPU so (lite0, batch 32: 200 against 150 images a second).

Depthwise convolutions keep theirs too. Each of their outputs sums k x k products
(9 or 25), not hundreds, so a weight's rounding error is not averaged away. On the
same 1,000 development images, keeping them float32 took the agreement to 0.949,
0.920 and 0.911; keeping instead the classifier head, the stem and the last
convolution (0.932 and 0.856 for lite0 and lite2), the projections (0.927, 0.852)
or the expansions (0.930, 0.853) gained nothing. On CPU the depthwise sums were
already float32 (`ops.conv2d`), so this costs no arithmetic there; elsewhere XLA
widens the layer's input to float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["cast", "compute_dtype", "full_precision_paths", "keeps_float32"]


def keeps_float32(node) -> bool:
    """Whether a module's parameters stay float32: batch norms, and depthwise convolutions (each output sums
    k x k products, not hundreds, so a weight's rounding error is not averaged away)."""
    return isinstance(node, nnx.BatchNorm) or (isinstance(node, nnx.Conv) and node.feature_group_count > 1)


def full_precision_paths(model: nnx.Module) -> frozenset[tuple]:
    """Paths (as `nnx.iter_graph` gives them) of the modules in `model` whose parameters stay float32."""
    return frozenset(tuple(path) for path, node in nnx.iter_graph(model) if keeps_float32(node))


def cast(state, dtype, keep: frozenset[tuple] = frozenset()):
    """`state` (a model's state, or any tree with the same paths) with its floating leaves in `dtype`, except
    those under a path in `keep`, which stay float32."""

    def leaf(path, x):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        keys = tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey))
        kept = any(keys[: len(p)] == p for p in keep)
        return x.astype(jnp.float32 if kept else dtype)

    return jax.tree_util.tree_map_with_path(leaf, state)


def compute_dtype(leaves) -> jnp.dtype:
    """The dtype a model computes in: the narrowest floating dtype among its parameters' `leaves`."""
    floating = [jnp.dtype(x.dtype) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]
    return min(floating, key=lambda d: d.itemsize) if floating else jnp.dtype(jnp.float32)
