"""Hubs of thousands of cheap, real experts as data: linear heads on a few shared backbones, some stand-alone MLPs.

Expert i's kind, classes, data budget, label noise and seed are drawn from
`(ScaleConfig.seed, i)` alone, so the hub of 1,000 is the first 1,000 experts of
the hub of 10,000, and the same config always gives the same specs
(`expert_specs`). Every backbone ends in `FEATURES` features, so heads over any of
them train in the same compiled program. `hub.generate` trains and stores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from mll_jax.configs import demo_hub
from mll_jax.configs.specs import ExpertSpec

__all__ = [
    "BACKBONES",
    "CNN_BACKBONE",
    "FEATURES",
    "GROWTH_STANDALONE",
    "HEADS",
    "MLP_BACKBONE",
    "NUM_CLASSES",
    "PRETRAINED_FEATURES",
    "STANDALONE",
    "ScaleConfig",
    "expert_spec",
    "expert_specs",
    "get_config",
    "growth_config",
    "is_standalone",
    "pretrained_backbone",
]

NUM_CLASSES = 10  # Fashion-MNIST
FEATURES = demo_hub.HEADS["in_features"]  # the demo family's width; the backbones below end in it too
HEADS = {"in_features": FEATURES}
# Cheap on CPU and unlike the demo's CNN: an MLP on every class, a small CNN on a subset that includes 'Bag'
# (which the demo's family-cnn never saw).
MLP_BACKBONE = ExpertSpec("scale-mlp", "mlp", {"hidden": [256, FEATURES]}, tuple(range(NUM_CLASSES)))
CNN_BACKBONE = ExpertSpec(
    "scale-small-cnn", "cnn", {"channels": [8, 16], "dense": FEATURES}, (0, 1, 3, 5, 8, 9), per_class=demo_hub.CNN_ITEMS
)
BACKBONES = (*demo_hub.BACKBONES, MLP_BACKBONE, CNN_BACKBONE)
# Heads over a pretrained model's frozen features (`ScaleConfig.pretrained`): EfficientNet-Lite's pooled features,
# the width of its top convolution in every variant.
PRETRAINED_FEATURES = 1280
# (arch, config) of the experts on pixels. ("cnn", demo_hub.SMALL_CNN) works too, but vmapped convolutions took
# 3.5 s a model on a 2-core CPU (20 at once), the small MLP 0.16 s.
STANDALONE = (("mlp", demo_hub.SMALL_MLP),)


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """A generated hub: how many experts, what they are drawn from, and the recipe that trains them."""

    num_experts: int
    backbones: tuple[ExpertSpec, ...] = BACKBONES  # trained once (or reused from a base hub)
    standalone_share: float = 0.02  # experts on pixels; the rest are heads on a backbone
    standalone: tuple[tuple[str, dict], ...] = STANDALONE
    num_classes: tuple[int, int] = (2, 6)  # inclusive range of classes per expert
    per_class: tuple[int, int] = (20, 2500)  # inclusive range, drawn log-uniformly (capped by what the pool has)
    max_noise: float = 0.6  # label noise drawn uniformly in [0, max_noise]
    corrupted_share: float = 0.0  # experts trained on corrupted images, drawn at random
    corruptions: tuple[str, ...] = ("blur", "noise")  # names in `data.corrupt.CORRUPTIONS`
    swapped_share: float = 0.0  # experts whose first two declared head names are exchanged, spread evenly
    # Where an expert's classes come from: every pool class (none named), or the pool classes under one of these
    # WordNet nodes (a domain: animals, vehicles, digits), or with `cross_share` under two of them at once.
    domains: tuple[str, ...] = ()
    cross_share: float = 0.0
    seed: int = 0
    prefix: str = "gen"  # expert i is f"{prefix}-{i:05d}"
    # Every expert takes the same number of steps, so a whole batch of them is one compiled program. 200 steps of
    # 64 at 5e-3 matched 300 of 128 at 3e-3 (accuracy 0.902 vs 0.904 on 192 heads) at a third of the work.
    steps: int = 200
    batch_size: int = 64
    learning_rate: float = 5e-3
    heads_per_program: int = 512  # linear heads trained together (memory: the indices are steps x batch each)
    models_per_program: int = 64  # stand-alone experts trained together
    input_spec: dict = dataclasses.field(default_factory=lambda: dict(demo_hub.INPUT_SPEC))
    # Heads over frozen pretrained features (issue 31): this share of the head experts sit on one of `pretrained`
    # (`zoo.pretrained.MODELS`), which sees the images at `pretrained_side` pixels (None: its own resolution).
    pretrained: tuple[str, ...] = ()
    pretrained_share: float = 0.0
    pretrained_side: int | None = None

    def __post_init__(self):
        if self.pretrained_share and not self.pretrained:
            raise ValueError("pretrained_share needs the pretrained models to draw from: set pretrained=(...)")


def pretrained_backbone(name: str) -> str:
    """The id of the shared backbone that is the pretrained model `name`'s frozen features."""
    return f"{name}-features"


def get_config(num_experts: int) -> ScaleConfig:
    """A hub of `num_experts` generated experts (1,000 and 10,000 are the sizes measured)."""
    return ScaleConfig(num_experts)


# The growth experiment's diverse hub (method.md §4.2): a third of the experts on pixels (two MLPs and a small
# CNN), the rest heads on the three backbones; 20 items per class up to all the pool has (4,000); label noise up to
# 60 %; a tenth trained on blurred or noisy images; 5 % with two declared head names swapped.
GROWTH_STANDALONE = (("mlp", demo_hub.SMALL_MLP), ("mlp", demo_hub.MLP), ("cnn", demo_hub.SMALL_CNN))


def growth_config(num_experts: int = 256) -> ScaleConfig:
    """The diverse hub the growth experiment grows (its first `num_experts` experts)."""
    return ScaleConfig(
        num_experts,
        standalone_share=1 / 3,
        standalone=GROWTH_STANDALONE,
        per_class=(20, 4000),
        corrupted_share=0.1,
        swapped_share=0.05,
        prefix="grow",
    )


def is_standalone(index: int, share: float) -> bool:
    """Every 1/share-th expert: exactly floor(n * share) of the first n, spread evenly, whatever n is."""
    return int((index + 1) * share) > int(index * share)


def expert_spec(config: ScaleConfig, index: int, groups: Sequence[Sequence[int]] = ()) -> ExpertSpec:
    """Expert `index` of `config`, drawn from (config.seed, index) alone; its classes from `groups` (the pool
    classes of each of `config.domains`, in order), or from the `NUM_CLASSES` Fashion-MNIST classes."""
    rng = np.random.default_rng([config.seed, index])
    k = int(rng.integers(config.num_classes[0], config.num_classes[1] + 1))
    if config.domains:
        if len(groups) != len(config.domains):
            raise ValueError(f"{len(config.domains)} domains need as many class groups, got {len(groups)}")
        drawn = rng.choice(len(groups), 2 if rng.random() < config.cross_share else 1, replace=False)
        pool = np.unique(np.concatenate([np.asarray(groups[g], np.int64) for g in drawn]))
        classes = tuple(int(c) for c in np.sort(rng.choice(pool, min(k, len(pool)), replace=False)))
    else:
        classes = tuple(int(c) for c in np.sort(rng.choice(NUM_CLASSES, k, replace=False)))
    low, high = np.log(config.per_class)
    per_class = int(np.clip(round(float(np.exp(rng.uniform(low, high)))), *config.per_class))
    noise = round(float(rng.uniform(0.0, config.max_noise)), 3)
    seed = int(rng.integers(2**31))
    if is_standalone(index, config.standalone_share):
        arch, arch_config = config.standalone[int(rng.integers(len(config.standalone)))]
        backbone = None
    else:
        arch, arch_config = "linear", HEADS
        backbone = config.backbones[int(rng.integers(len(config.backbones)))].id
    # Drawn after everything above, so configs without corruptions draw the experts they always did.
    corruption = None
    if config.corrupted_share and rng.random() < config.corrupted_share:
        corruption = config.corruptions[int(rng.integers(len(config.corruptions)))]
    swap = (0, 1) if config.swapped_share and is_standalone(index, config.swapped_share) else None
    # Drawn last, so configs without pretrained heads draw the experts they always did.
    if config.pretrained_share and backbone is not None and rng.random() < config.pretrained_share:
        backbone = pretrained_backbone(config.pretrained[int(rng.integers(len(config.pretrained)))])
        arch_config = {"in_features": PRETRAINED_FEATURES}
    return ExpertSpec(
        f"{config.prefix}-{index:05d}",
        arch,
        arch_config,
        classes,
        label_noise=noise,
        per_class=per_class,
        seed=seed,
        backbone=backbone,
        corruption=corruption,
        swap_heads=swap,
    )


def expert_specs(config: ScaleConfig, groups: Sequence[Sequence[int]] = ()) -> tuple[ExpertSpec, ...]:
    """Every expert of `config`, in order (`groups` as `expert_spec` takes them)."""
    return tuple(expert_spec(config, i, groups) for i in range(config.num_experts))
