"""The settings types: what a sample store, an expert, a general model and an oracle are built from (config as
data)."""

from __future__ import annotations

import dataclasses

__all__ = ["FIRING", "REGION_OF", "CaptionRule", "ExpertSpec", "GeneralSpec", "LabelRule", "OracleSpec", "StoreSpec"]

FIRING = ("majority", "plurality")  # how a head fires on a concept (`LabelRule.fires`)
REGION_OF = ("model", "head")  # what a region lies around (`LabelRule.region_of`)


@dataclasses.dataclass(frozen=True)
class StoreSpec:
    """How a train split is cut (method.md §2): per class, `per_class` images for the sample store and
    `dev_per_class` for the development split, drawn with `seed`; the rest is the expert pool.

    A hub made before the development split existed records no `dev_per_class`; it reads as 0.
    """

    source: str = "fashion_mnist"
    per_class: int = 1000
    seed: int = 0
    dev_per_class: int = 1000  # as large as the test split, so development estimates are as precise

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LabelRule:
    """What a hub's heads may be labelled with (method.md §3.1), chosen when the hub is made.

    `region_steps` None: any store concept a head takes the majority of the model's belief on (one domain, as
    on Fashion-MNIST). An integer n: only concepts under a node at most n hypernym steps above one of the
    model's declared classes. In an open world a model's softmax has no "none of these": a digit expert shown a
    dog still puts its mass on some digit, and the plain rule would label it a dog expert.
    """

    region_steps: int | None = None
    # "majority": a head fires on a concept where its mean probability is at least 0.5 (the paper's rule).
    # "plurality": where it is the largest of its model's heads, so a head weak on the store's pictures still fires
    # on its own concept; only inside a region, else every model would fire on every concept of the world.
    fires: str = "majority"
    # "model": the region lies around every class the model declares, so a head confused on the store's pictures
    # is labelled with a sibling class's concept. "head": around each head's own declared class, so labelling
    # verifies declared names and a head serves only concepts its name agrees with (the mislabel report judges by
    # majority inside the model's region).
    region_of: str = "model"

    def __post_init__(self):
        if self.fires not in FIRING:
            raise ValueError(f"LabelRule.fires must be one of {FIRING}, got {self.fires!r}")
        if self.region_of not in REGION_OF:
            raise ValueError(f"LabelRule.region_of must be one of {REGION_OF}, got {self.region_of!r}")
        for name, value in (("fires", "plurality"), ("region_of", "head")):
            if getattr(self, name) == value and self.region_steps is None:
                raise ValueError(
                    f"LabelRule({name}={value!r}) needs region_steps (0 or more): it bounds where heads may fire, "
                    "and region_steps=None means no bound"
                )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ExpertSpec:
    """One expert of a hub: architecture and config, the classes it trains on, and how its data is spoiled."""

    id: str
    arch: str
    config: dict
    classes: tuple[int, ...]  # dataset labels, in head order
    epochs: int = 2
    label_noise: float = 0.0
    per_class: int | None = None  # cap on training items per class (tiny data)
    swap_heads: tuple[int, int] | None = None  # declared names of these heads exchanged
    seed: int = 0
    backbone: str | None = None  # heads only (`linear`), trained on this backbone's frozen features
    corruption: str | None = None  # trained on corrupted images (names in `data.corrupt.CORRUPTIONS`)


@dataclasses.dataclass(frozen=True)
class CaptionRule:
    """How the paper-regime general model's captioned images are drawn (method.md §3.4), fixed before any MLL
    result was measured: `per_concept` images of each store concept from the expert pool, each captioned
    independently with a lemma of its own concept (`own`), of one of its hypernyms strictly below `top`
    (`hypernym`), or of another store concept at random (`other`, web noise)."""

    per_concept: int = 100
    own: float = 0.4
    hypernym: float = 0.5
    other: float = 0.1
    # The cut: artifact.n.01 and everything above it (whole, object, physical entity, entity) are too abstract to
    # caption a photo with; footwear, shoe, garment, clothing, covering, container and the like stay in. Several
    # nodes: a cut per domain (hypernyms below any of them stay in; `configs.open_world_hub`).
    top: str | tuple[str, ...] = "artifact.n.01"
    seed: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GeneralSpec:
    """The general model: the backend and its options (`hub.general.add_to_hub` builds it).

    `data` is what an `aligned` model learns the domain from: "captions" (the paper's regime: a web-like
    captioned sample of the expert pool, never a store image; the default) or "store" (the in-domain
    ablation: the store's fit half with every concept's own text). The `classifier` backend trains on the store.
    """

    backend: str = "aligned"
    id: str = "general"
    epochs: int = 15
    config: dict | None = None  # aligned: tower config; classifier: mlp config
    source: str | None = None  # clip: local Hugging Face directory or model name
    seed: int = 0
    augmentations: tuple[str, ...] | None = None  # names in `data.augment.AUGMENTATIONS`; None: the backend's default
    data: str = "captions"  # aligned only: "captions" (paper regime) or "store" (in-domain)
    captions: CaptionRule = CaptionRule()


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    """The oracle baseline's recipe (method.md §4): a model of `arch` / `config` trained on exactly a task's
    classes, `per_class` items each from the expert pool, by Adam until its accuracy on the task's
    `early_stopping_on` items has not risen for `patience` epochs (at most `max_epochs`), keeping the best epoch."""

    arch: str
    config: dict
    per_class: int
    max_epochs: int
    patience: int
    batch_size: int
    learning_rate: float
    early_stopping_on: str = "development split"
    input_spec: dict | None = None  # None: the demo hub's (Fashion-MNIST's 28x28 grey)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        return out if self.input_spec is not None else {k: v for k, v in out.items() if k != "input_spec"}
