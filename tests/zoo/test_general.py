"""The general model: an image tower aligned with MiniLM text embeddings, scoring any concept or name."""

import numpy as np
import pytest

from mll_jax.concepts import task as task_lib
from mll_jax.concepts import text
from mll_jax.data import store
from mll_jax.data.preprocess import preprocess
from mll_jax.nets.aligned import text_scores
from mll_jax.zoo import general


def test_the_demo_general_model_is_text_aligned_and_heads_every_node(hub):
    entry = hub.entry(hub.general_id)
    assert entry.arch == "aligned" and list(entry.heads) == sorted(hub.sdag.graph)
    model = hub.load_model(hub.general_id)
    nodes, text = hub.sdag.node_embeddings()
    kernel = np.asarray(model.head.kernel[...]).T  # [nodes, dim]
    scale = np.linalg.norm(kernel, axis=1)
    np.testing.assert_allclose(scale, scale[0], rtol=1e-5)  # one learned temperature for every head
    np.testing.assert_allclose(kernel / scale[:, None], text, atol=1e-5)  # the text side stayed frozen (LiT)


def test_the_default_tower_trains_with_shifts_and_flips_and_scores_both_store_halves_alike(hub):
    # It never trained on the store (the paper regime), so calibrating on either half is honest; the in-domain
    # model scored 0.88 on its training half against 0.85 on the other.
    entry = hub.entry(hub.general_id)
    assert entry.provenance["augmentations"] == ["shift", "flip"] and entry.provenance["data"] == "captions"
    model = hub.load_model(hub.general_id)
    heads = [entry.heads.index(s) for s in hub.store.synsets]
    logits = np.asarray(model(preprocess(hub.store.images, entry.input_spec)))[:, heads]
    hits = logits.argmax(1) == hub.store.concepts
    fit = store.fit_mask(len(hub.store))
    assert hits.mean() > 0.5  # 10-way: chance is 0.1
    assert abs(hits[fit].mean() - hits[~fit].mean()) < 0.03


def _zero_shot_accuracy(hub, test_split, names):
    model = hub.load_model(hub.general_id)
    classes = task_lib.resolve(hub.sdag, names)
    y = task_lib.targets(np.array(test_split.synsets)[test_split.labels], classes)
    keep = y >= 0
    x = preprocess(test_split.images[keep], hub.entry(hub.general_id).input_spec)
    scores = text_scores(model, x, text.embed(names))
    return float(np.mean(np.asarray(scores).argmax(1) == y[keep]))


@pytest.mark.parametrize(
    "names, floor",
    [
        # The paper-regime model scored 0.83 on both when this was written (the in-domain one 0.94 and 0.93).
        (["pocketbook", "espadrilles", "slacks"], 0.7),  # no expert covers bags
        (["running shoes", "oxford shirt", "bomber jacket"], 0.7),  # names outside WordNet, as typed
    ],
)
def test_it_scores_class_names_as_typed(hub, test_split, names, floor):
    assert _zero_shot_accuracy(hub, test_split, names) > floor


def test_switching_backends_replaces_the_general_model_and_a_bad_one_changes_nothing(hub_copy):
    before = dict(hub_copy.entries)
    with pytest.raises(ValueError, match="unknown general-model backend 'vlm'"):
        general.add_to_hub(hub_copy, general.GeneralSpec("vlm"))
    with pytest.raises(ValueError, match="needs a checkpoint"):
        general.add_to_hub(hub_copy, general.GeneralSpec("clip"))
    with pytest.raises(ValueError, match="converted, not trained"):
        general.add_to_hub(hub_copy, general.GeneralSpec("clip", source="openai/clip", augmentations=("shift",)))
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['rotate'\]"):
        general.add_to_hub(hub_copy, general.GeneralSpec("classifier", augmentations=("rotate",)))
    assert hub_copy.entries == before
    general.add_to_hub(hub_copy, general.GeneralSpec("classifier", id="general-mlp", epochs=1))
    assert hub_copy.ids("general") == ["general-mlp"] and "general" not in hub_copy.entries
    assert set(hub_copy.entries) - {"general-mlp"} == set(before) - {"general"}
