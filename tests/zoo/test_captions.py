"""The paper regime's general model: trained on a captioned sample of the expert pool, never on a store image."""

import dataclasses

import numpy as np
import pytest

from mll_jax.configs import general as regimes
from mll_jax.configs.specs import CaptionRule, GeneralSpec
from mll_jax.data import store as store_lib
from mll_jax.zoo import captions, general


def test_the_default_general_model_never_saw_a_store_image(hub):
    provenance = hub.entry(hub.general_id).provenance
    assert provenance["data"] == "captions" and regimes.get_config() == regimes.REGIMES["paper"]
    sample = captions.draw(hub.sdag, hub.store_spec, CaptionRule(**provenance["caption_rule"]))
    assert captions.digest(sample.indices) == provenance["indices_sha256"]  # the images it was trained on
    pool = store_lib.expert_pool(hub.store_spec)  # pool rows only: store and development images never
    assert (sample.images == pool.images[sample.indices]).all()
    assert (np.array(hub.store.synsets)[sample.concepts] == np.array(pool.synsets)[pool.labels[sample.indices]]).all()
    assert provenance["images"] == len(sample.indices) == 100 * len(hub.store.synsets)


def test_captions_follow_the_fixed_rule(hub):
    rule = CaptionRule()
    assert (rule.per_concept, rule.own, rule.hypernym, rule.other) == (100, 0.4, 0.5, 0.1)
    sample = captions.draw(hub.sdag, hub.store_spec, rule)
    n = len(sample.indices)
    for kind, share in zip(captions.KINDS, (rule.own, rule.hypernym, rule.other)):
        assert abs(sample.counts()[kind] / n - share) < 4 * np.sqrt(share * (1 - share) / n), sample.counts()
    concepts = hub.sdag.concept_nodes
    for c, kind, word in zip(sample.concepts, sample.kinds, sample.captions):
        text, node = sample.vocabulary[word], concepts[c]
        if captions.KINDS[kind] == "own":
            sources = [node]
        elif captions.KINDS[kind] == "hypernym":
            sources = captions.hypernyms(hub.sdag, node, rule.top)
        else:
            sources = [v for v in concepts if v != node]
        assert any(text in captions.lemmas(hub.sdag, v) for v in sources), (node, kind, text)
    vocabulary = set(sample.vocabulary)
    assert {"footwear", "shoe", "garment", "clothing", "bag", "container"} <= vocabulary
    assert not {"entity", "physical entity", "object", "whole", "artifact"} & vocabulary  # the documented cut
    images = np.asarray(hub.store.images)  # the pixels are the pool's, not the store's
    assert sample.images.shape[1:] == images.shape[1:]


def test_bad_general_specs_are_refused_and_change_nothing(hub_copy):
    before = dict(hub_copy.entries)
    with pytest.raises(ValueError, match="unknown general-model data 'web'"):
        general.add_to_hub(hub_copy, GeneralSpec("aligned", data="web"))
    with pytest.raises(ValueError, match="sum to 1"):
        general.add_to_hub(hub_copy, GeneralSpec("aligned", captions=CaptionRule(own=0.5)))
    with pytest.raises(ValueError, match="is not an SDAG node"):
        general.add_to_hub(hub_copy, GeneralSpec("aligned", captions=CaptionRule(top="vehicle.n.01")))
    with pytest.raises(ValueError, match="unknown general-model regime 'web'"):
        regimes.get_config("web")
    assert hub_copy.entries == before


def test_the_in_domain_ablation_trains_on_the_store_fit_half(hub_copy):
    spec = regimes.REGIMES["in-domain"]
    assert spec.data == "store"
    general.add_to_hub(hub_copy, dataclasses.replace(spec, epochs=1))  # one epoch: the path, not the model
    provenance = hub_copy.entry(hub_copy.general_id).provenance
    assert provenance["data"] == "store" and "fit half" in provenance["trained_on"]
    assert not general.built_from(hub_copy, regimes.REGIMES["paper"]) and general.built_from(hub_copy, spec)
