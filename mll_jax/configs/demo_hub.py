"""The demo hub as data: 17 experts on overlapping Fashion-MNIST class subsets, a shared backbone, the general model.

Experts train on the expert pool (train split minus the sample store). Two are
deliberately flawed: `weak-noisy-mlp` trains with 60 % label noise and
`swapped-cnn` declares two of its heads under each other's names. No expert
covers 'Bag': tasks with bags need the general model. One family shares a
backbone: a CNN trained once on every expert-pool class, and three experts that
are only heads on its frozen features. `hub.zoo.build` trains what a hub lacks.
"""

from __future__ import annotations

import dataclasses

from mll_jax.configs import general
from mll_jax.configs.specs import ExpertSpec, GeneralSpec

__all__ = [
    "BACKBONES",
    "CNN",
    "CNN_ITEMS",
    "DEMO_EXPERTS",
    "GENERAL",
    "HEADS",
    "HubConfig",
    "INPUT_SPEC",
    "LARGE_CNN",
    "MLP",
    "SMALL_CNN",
    "SMALL_MLP",
    "get_config",
]

INPUT_SPEC = {"shape": [28, 28, 1], "dtype": "uint8", "mean": 0.286, "std": 0.353}
SMALL_CNN = {"channels": [8, 16], "dense": 64}
CNN = {"channels": [16, 32], "dense": 128}
LARGE_CNN = {"channels": [24, 48], "dense": 128}
CNN_ITEMS = 2500  # CNNs train on fewer items per class: convolutions are slow on CPU
SMALL_MLP = {"hidden": [64]}
MLP = {"hidden": [256]}
HEADS = {"in_features": CNN["dense"]}


DEMO_EXPERTS = (
    ExpertSpec("footwear-cnn", "cnn", CNN, (5, 7, 9), per_class=CNN_ITEMS),
    ExpertSpec("footwear-mlp", "mlp", MLP, (5, 7, 9)),
    ExpertSpec("tops-cnn", "cnn", LARGE_CNN, (0, 2, 4, 6), per_class=CNN_ITEMS),
    ExpertSpec("tops-mlp", "mlp", SMALL_MLP, (0, 6, 2)),
    ExpertSpec("outerwear-cnn", "cnn", SMALL_CNN, (2, 4, 3), per_class=CNN_ITEMS),
    ExpertSpec("bottoms-mlp", "mlp", MLP, (1, 3, 0)),
    ExpertSpec("casual-cnn", "cnn", CNN, (0, 1, 7), per_class=CNN_ITEMS),
    ExpertSpec("sandal-boot-dress-mlp", "mlp", MLP, (5, 9, 3)),
    ExpertSpec("dress-coat-shirt-cnn", "cnn", CNN, (3, 4, 6), per_class=CNN_ITEMS),
    ExpertSpec("apparel-cnn", "cnn", CNN, (0, 1, 2, 3, 4, 6), per_class=CNN_ITEMS),
    ExpertSpec("sneaker-boot-pullover-mlp", "mlp", SMALL_MLP, (7, 9, 2)),
    ExpertSpec("weak-noisy-mlp", "mlp", SMALL_MLP, (5, 7, 9, 4), epochs=1, label_noise=0.6),
    ExpertSpec("swapped-cnn", "cnn", SMALL_CNN, (5, 7, 1), swap_heads=(0, 1)),
    ExpertSpec("tiny-shirt-cnn", "cnn", SMALL_CNN, (6, 0), per_class=20, epochs=5),
    ExpertSpec("family-footwear", "linear", HEADS, (5, 7, 9), per_class=CNN_ITEMS, epochs=3, backbone="family-cnn"),
    ExpertSpec("family-tops", "linear", HEADS, (0, 2, 4, 6), per_class=CNN_ITEMS, epochs=3, backbone="family-cnn"),
    ExpertSpec("family-trouser-dress", "linear", HEADS, (1, 3), per_class=CNN_ITEMS, epochs=3, backbone="family-cnn"),
)
BACKBONES = (ExpertSpec("family-cnn", "cnn", CNN, (0, 1, 2, 3, 4, 5, 6, 7, 9), per_class=CNN_ITEMS),)
GENERAL = general.get_config()  # the paper regime


@dataclasses.dataclass(frozen=True)
class HubConfig:
    experts: tuple[ExpertSpec, ...]
    backbones: tuple[ExpertSpec, ...]
    general: GeneralSpec | None
    input_spec: dict


def get_config() -> HubConfig:
    """The demo hub (`mll-jax hub build`)."""
    return HubConfig(DEMO_EXPERTS, BACKBONES, GENERAL, INPUT_SPEC)
