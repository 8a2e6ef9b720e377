"""Generated hubs (`hub.generate`, `configs.scale_hub`): deterministic specs, real experts, expert pool only."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from mll_jax import engine
from mll_jax.configs import open_world_hub, scale_hub
from mll_jax.data import datasets
from mll_jax.data import store as store_lib
from mll_jax.hub import Hub
from mll_jax.zoo import generate

CONFIG = dataclasses.replace(scale_hub.get_config(40), standalone_share=0.1)  # 4 stand-alone MLPs, 36 heads
LOW_NOISE = 0.3


@pytest.fixture(scope="module")
def generated(hub_path, tmp_path_factory):
    """A copy of the session demo hub with CONFIG's experts; what every `fit` call was given; the expert pool."""
    pool = store_lib.expert_pool(Hub.open(hub_path).store_spec)
    calls = []
    real_fit, real_load = generate.fit, datasets.load

    def spy(specs, inputs, labels, input_spec, scale):
        calls.append({"ids": [s.id for s in specs], "inputs": dict(inputs), "labels": labels})
        return real_fit(specs, inputs, labels, input_spec, scale)

    def train_split_only(name, split, *args, **kwargs):
        if split != "train":
            raise AssertionError(f"generating read the {split} split")
        return real_load(name, split, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("generating read the sample store or the development split")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generate, "fit", spy)
        patch.setattr(datasets, "load", train_split_only)
        patch.setattr(store_lib, "load", forbidden)
        patch.setattr(store_lib, "development", forbidden)
        hub = generate.build(tmp_path_factory.mktemp("generated") / "hub", CONFIG, base=hub_path, progress=False)
    return hub, calls, pool


def accuracy(probs: np.ndarray, labels: np.ndarray, classes) -> float:
    """Accuracy of head probabilities [N, K] on the items of `classes` (head order) among `labels`."""
    mine = np.isin(labels, classes)
    return float(np.mean(probs[mine].argmax(1) == np.searchsorted(classes, labels[mine])))


def test_specs_are_drawn_deterministically_within_the_ranges():
    specs = scale_hub.expert_specs(CONFIG)
    assert specs == scale_hub.expert_specs(dataclasses.replace(scale_hub.get_config(40), standalone_share=0.1))
    assert scale_hub.expert_specs(dataclasses.replace(CONFIG, num_experts=100))[:40] == specs  # a prefix of more
    assert scale_hub.expert_specs(dataclasses.replace(CONFIG, seed=1)) != specs
    assert len({s.id for s in specs}) == 40
    standalone = [s for s in specs if s.backbone is None]
    assert len(standalone) == 4 and all((s.arch, s.config) in CONFIG.standalone for s in standalone)
    backbones = {b.id for b in CONFIG.backbones}
    heads = [s for s in specs if s.backbone is not None]
    assert all(s.arch == "linear" and s.backbone in backbones for s in heads)
    many = scale_hub.expert_specs(scale_hub.get_config(1000))
    assert sum(s.backbone is None for s in many) == 20  # 2 %
    assert {s.backbone for s in many} == backbones | {None}
    for s in many:
        assert 2 <= len(s.classes) <= 6 and len(set(s.classes)) == len(s.classes)
        assert all(0 <= c < 10 for c in s.classes)
        assert 20 <= s.per_class <= 2500 and 0.0 <= s.label_noise <= 0.6
    per_class = np.array([s.per_class for s in many])
    assert np.mean(per_class < 100) > 0.25 and np.mean(per_class > 1000) > 0.1  # log-uniform: both ends drawn
    assert {len(s.classes) for s in many} == {2, 3, 4, 5, 6}


def test_open_world_experts_draw_their_classes_from_one_domain_or_two():
    from mll_jax.configs import open_world_hub
    from mll_jax.data import world

    assert len(world.catalog()) == open_world_hub.WORLD_CONCEPTS
    config = open_world_hub.get_config(400)
    groups = [list(range(20 * g, 20 * g + 3 + g)) for g in range(len(open_world_hub.DOMAINS))]  # 3 to 18 classes
    specs = scale_hub.expert_specs(config, groups)
    assert specs == scale_hub.expert_specs(config, groups) and all(s.id.startswith("world-") for s in specs)
    crossing = 0
    for s in specs:
        inside = [g for g in groups if set(s.classes) & set(g)]
        assert 1 <= len(inside) <= 2 and set(s.classes) <= set().union(*inside), s.classes
        assert 2 <= len(s.classes) <= 20
        crossing += len(inside) == 2
    assert abs(crossing / len(specs) - open_world_hub.CROSS_SHARE) < 0.08
    assert max(len(s.classes) for s in specs) > 15 and abs(sum(s.backbone is None for s in specs) / 400 - 1 / 3) < 0.01
    with pytest.raises(ValueError, match="16 domains need as many class groups, got 2"):
        scale_hub.expert_spec(config, 0, groups[:2])


def test_the_growth_hub_is_diverse_as_configured():
    specs = scale_hub.expert_specs(scale_hub.growth_config())
    assert len(specs) == 256 and all(s.id.startswith("grow-") for s in specs)
    kinds = {(s.arch, s.backbone) for s in specs}
    assert {("mlp", None), ("cnn", None)} <= kinds and {b.id for b in scale_hub.BACKBONES} <= {b for _, b in kinds}
    assert abs(sum(s.backbone is None for s in specs) / 256 - 1 / 3) < 0.01
    assert sum(s.swap_heads == (0, 1) for s in specs) == 256 // 20  # 5 %, spread evenly
    corrupted = [s.corruption for s in specs if s.corruption]
    assert set(corrupted) == {"blur", "noise"} and 0.05 < len(corrupted) / 256 < 0.15
    assert min(s.per_class for s in specs) < 40 and max(s.per_class for s in specs) > 2500
    assert max(s.label_noise for s in specs) > 0.55 and all(2 <= len(s.classes) <= 6 for s in specs)
    # configs without corruptions or swaps draw what they always drew (the measured 1,000 and 10,000 hubs)
    assert not any(s.corruption or s.swap_heads for s in scale_hub.expert_specs(scale_hub.get_config(100)))
    first = scale_hub.expert_spec(scale_hub.get_config(1), 0)
    assert (first.classes, first.per_class, first.label_noise, first.seed, first.backbone) == (
        (0, 1, 2, 3, 5, 9),
        374,
        0.438,
        1357791199,
        "scale-mlp",
    )


def test_generated_experts_are_stored_as_specified(generated, hub_path):
    hub, _, pool = generated
    names = [c["name"] for c in pool.classes]
    assert set(Hub.open(hub_path).entries) < set(hub.entries)  # the demo hub's models are kept
    for spec in scale_hub.expert_specs(CONFIG):
        entry = hub.entry(spec.id)
        assert entry.arch == spec.arch and entry.backbone == spec.backbone
        assert list(entry.heads) == [names[c] for c in spec.classes]
        recorded = entry.provenance
        assert recorded["classes"] == list(spec.classes) and recorded["per_class"] == spec.per_class
        assert recorded["label_noise"] == spec.label_noise and recorded["seed"] == spec.seed
        assert recorded["backbone"] == spec.backbone and recorded["trained_on"] == "expert pool"
        assert hub.load_model(spec.id).head.out_features == len(spec.classes)
    assert {b.id for b in CONFIG.backbones} <= set(hub.backbones)


def test_generated_experts_are_real(generated, test_split):
    hub, _, _ = generated
    specs = scale_hub.expert_specs(CONFIG)
    probs = engine.from_hub(hub, [s.id for s in specs]).probabilities(test_split.images)
    low = [s for s in specs if s.label_noise <= LOW_NOISE]
    assert len(low) >= 10 and any(s.backbone is None for s in low)
    for s in low:  # at least halfway from chance to perfect on its own classes of the test split
        chance = 1 / len(s.classes)
        assert accuracy(probs[s.id], test_split.labels, s.classes) > chance + (1 - chance) / 2, s
    assert np.mean([accuracy(probs[s.id], test_split.labels, s.classes) for s in specs]) > 0.85
    # The same heads untrained fail that bar: the accuracy comes from training, not from the backbones.
    heads = [s for s in low if s.backbone is not None]
    untrained = jax.device_get(nnx.to_pure_dict(generate.init("linear", scale_hub.HEADS, heads, CONFIG.num_classes[1])))
    models = [generate.unstack("linear", scale_hub.HEADS, untrained, m, len(s.classes)) for m, s in enumerate(heads)]
    members = [engine.Member(s.id, model, CONFIG.input_spec, s.backbone) for s, model in zip(heads, models)]
    backbones = {s.backbone: hub.load_backbone(s.backbone) for s in heads}
    before = engine.Engine(members, backbones).probabilities(test_split.images)
    bars = [1 / len(s.classes) + (1 - 1 / len(s.classes)) / 2 for s in heads]
    passed = [accuracy(before[s.id], test_split.labels, s.classes) > bar for s, bar in zip(heads, bars)]
    assert np.mean(passed) < 0.5


def test_training_reads_only_the_expert_pool(generated):
    hub, calls, pool = generated
    # Reaching here means no read of the test split, the sample store or the development split (they raise).
    assert {i for c in calls for i in c["ids"]} == {s.id for s in scale_hub.expert_specs(CONFIG)}
    for call in calls:
        assert np.array_equal(call["labels"], pool.labels)
        assert np.array_equal(call["inputs"][None, None], pool.images)  # (backbone, corruption): pixels, clean
        assert all(len(x) == len(pool) for x in call["inputs"].values())
    backbone = next(b for b in CONFIG.backbones if (b.id, None) in calls[0]["inputs"])
    expected = engine.model_features(hub.load_backbone(backbone.id), CONFIG.input_spec, pool.images[:64])
    np.testing.assert_allclose(calls[0]["inputs"][backbone.id, None][:64], expected, atol=1e-5)


def test_building_again_trains_nothing(generated, monkeypatch):
    hub, _, _ = generated
    monkeypatch.setattr(generate, "fit", lambda *a, **k: pytest.fail("trained again"))
    again = generate.build(hub.path, CONFIG, progress=False)
    assert set(again.entries) == set(hub.entries)


def test_batched_training_is_deterministic_and_padding_is_inert():
    pool = store_lib.expert_pool()
    config = dataclasses.replace(CONFIG, steps=20)
    specs = [s for s in scale_hub.expert_specs(config) if s.backbone is not None][:3]
    features = np.random.default_rng(0).standard_normal((len(pool), scale_hub.FEATURES)).astype(np.float32)
    inputs = {generate.source(s): features for s in specs}
    params, _ = generate.fit(specs, inputs, pool.labels, None, config)
    again, _ = generate.fit(specs, inputs, pool.labels, None, config)
    padded, _ = generate.fit([*specs, specs[-1], specs[-1]], inputs, pool.labels, None, config)
    jax.tree.map(np.testing.assert_array_equal, params, again)
    for m in range(3):  # training alongside other experts (or copies) changes nothing
        jax.tree.map(lambda a, b, m=m: np.testing.assert_allclose(a[m], b[m], atol=1e-6), params, padded)
    start = jax.device_get(nnx.to_pure_dict(generate.init("linear", scale_hub.HEADS, specs, config.num_classes[1])))
    for m, s in enumerate(specs):  # heads beyond an expert's classes stay as they started: masked, untouched
        k = len(s.classes)
        assert np.all(params["head"]["bias"][m, k:] == start["head"]["bias"][m, k:])
        np.testing.assert_array_equal(params["head"]["kernel"][m, :, k:], start["head"]["kernel"][m, :, k:])
        assert not np.allclose(params["head"]["kernel"][m, :, :k], start["head"]["kernel"][m, :, :k])


def test_domain_groups_are_read_off_the_hub_sdag_and_bad_domains_are_refused(hub):
    pool = store_lib.expert_pool(hub.store_spec)
    config = dataclasses.replace(scale_hub.get_config(4), domains=("footwear.n.02", "bag.n.04"))
    groups = generate.class_groups(hub, config, pool)
    assert [[pool.classes[c]["name"] for c in g] for g in groups] == [["Sandal", "Sneaker", "Ankle boot"], ["Bag"]]
    with pytest.raises(ValueError, match="'vehicle.n.01' is not a node of the hub's SDAG"):
        generate.class_groups(hub, dataclasses.replace(config, domains=("vehicle.n.01",)), pool)


PRETRAINED = dataclasses.replace(
    scale_hub.get_config(6),
    standalone_share=0.0,
    pretrained=("efficientnet-lite0",),
    pretrained_share=0.5,
    pretrained_side=32,  # the path, not the features' quality: lite0 at 32 px reads the pool in seconds
    prefix="pre",
)


def test_heads_over_a_pretrained_models_frozen_features(hub_path, tmp_path, test_split):
    specs = scale_hub.expert_specs(PRETRAINED)
    backbone = scale_hub.pretrained_backbone("efficientnet-lite0")
    on_it = [s for s in specs if s.backbone == backbone]
    assert 0 < len(on_it) < len(specs) and all(s.config == {"in_features": 1280} for s in on_it)
    plain = scale_hub.expert_specs(dataclasses.replace(PRETRAINED, pretrained=(), pretrained_share=0.0))
    assert [s for s in specs if s not in on_it] == [s for s in plain if s.id not in {t.id for t in on_it}]

    hub = generate.build(tmp_path / "hub", PRETRAINED, base=hub_path, progress=False)
    stored = hub.backbones[backbone]
    assert stored.arch == "efficientnet_lite" and stored.input_spec["shape"] == [32, 32, 3]
    assert stored.provenance["pretrained"] == "efficientnet-lite0" and stored.provenance["source_sha256"]
    assert all(hub.entry(s.id).input_spec == stored.input_spec for s in on_it)  # heads see what their backbone sees

    probs = engine.from_hub(hub, [s.id for s in on_it]).probabilities(test_split.images)
    for s in on_it:  # trained on frozen ImageNet features of the pool: far above chance on the test split
        chance = 1 / len(s.classes)
        assert accuracy(probs[s.id], test_split.labels, s.classes) > chance + (1 - chance) / 2, s
    features = engine.model_features(hub.load_backbone(backbone), stored.input_spec, test_split.images[:64])
    head = hub.load_model(on_it[0].id)
    direct = jax.nn.softmax(np.asarray(head(features)), axis=-1)
    np.testing.assert_allclose(probs[on_it[0].id][:64], direct, atol=1e-5)  # the engine runs the family as stored

    with pytest.raises(ValueError, match="pretrained="):
        dataclasses.replace(PRETRAINED, pretrained=())


def test_the_open_world_config_puts_a_share_of_heads_on_lite0_only_when_asked():
    assert open_world_hub.get_config(64, 1) == open_world_hub.get_config(64, 1, 0.0)  # the reported hub unchanged
    config = open_world_hub.get_config(64, 1, 0.25)
    assert config.pretrained == ("efficientnet-lite0",) and config.pretrained_side == open_world_hub.PRETRAINED_SIDE
    backbone = scale_hub.pretrained_backbone("efficientnet-lite0")
    groups = [[0, 1, 2]] * len(config.domains)  # which classes does not matter here, only which backbone
    heads = [s for s in scale_hub.expert_specs(config, groups) if s.backbone is not None]
    on_it = [s for s in heads if s.backbone == backbone]
    assert 0.1 < len(on_it) / len(heads) < 0.4
