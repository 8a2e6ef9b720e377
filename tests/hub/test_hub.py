import json

import jax.numpy as jnp
import numpy as np
import pytest

from mll_jax import nets
from mll_jax.hub import Hub, checkpoint
from mll_jax.hub.database import FORMAT_VERSION


def test_checkpoint_round_trip(tmp_path):
    model = nets.build("cnn", {"channels": [8, 16], "dense": 32}, num_heads=3, seed=1)
    digest = checkpoint.save(tmp_path / "m", model)
    restored = checkpoint.restore(tmp_path / "m", nets.abstract("cnn", {"channels": [8, 16], "dense": 32}, 3), digest)
    x = jnp.linspace(-1, 1, 2 * 28 * 28).reshape(2, 28, 28, 1)
    np.testing.assert_array_equal(model(x), restored(x))


def test_checkpoint_checksum_mismatch_is_an_error(tmp_path):
    model = nets.build("mlp", {"hidden": [16]}, num_heads=2)
    checkpoint.save(tmp_path / "m", model)
    with pytest.raises(ValueError, match="does not match its recorded checksum"):
        checkpoint.restore(tmp_path / "m", nets.abstract("mlp", {"hidden": [16]}, 2), "0" * 64)


def test_hub_models_load_with_their_declared_heads(hub):
    assert len(hub.ids("expert")) >= 12 and hub.general_id == "general"
    archs = {hub.entry(i).arch for i in hub.ids("expert")}
    assert archs == {"mlp", "cnn", "linear"}
    family = [i for i in hub.ids("expert") if hub.entry(i).backbone]
    assert len(family) == 3 and all(hub.entry(i).arch == "linear" for i in family)
    backbone = hub.load_backbone("family-cnn")
    assert backbone.head.in_features == hub.load_model(family[0]).head.in_features
    model = hub.load_model("footwear-cnn")
    assert model.head.out_features == len(hub.entry("footwear-cnn").heads) == 3


def test_add_replaces_and_keeps_other_entries(hub_copy):
    before = set(hub_copy.entries)
    model = nets.build("mlp", {"hidden": [16]}, num_heads=2)
    hub_copy.add("extra-mlp", model, "mlp", {"hidden": [16]}, ["Sandal", "Sneaker"], {"mean": 0.0, "std": 1.0})
    reopened = Hub.open(hub_copy.path)
    assert set(reopened.entries) == before | {"extra-mlp"}
    with pytest.raises(ValueError, match="2 head names for 3 heads"):
        hub_copy.add("bad", nets.build("mlp", {}, 3), "mlp", {}, ["a", "b"], {})
    with pytest.raises(ValueError, match="model id"):
        hub_copy.add("../escape", model, "mlp", {"hidden": [16]}, ["a", "b"], {})


def test_a_hub_opened_by_a_relative_path_stores_models(hub_copy, monkeypatch):
    monkeypatch.chdir(hub_copy.path.parent)
    relative = Hub.open(hub_copy.path.name)
    model = nets.build("mlp", {"hidden": [16]}, num_heads=2)
    relative.add("extra-mlp", model, "mlp", {"hidden": [16]}, ["Sandal", "Sneaker"], {"mean": 0.0, "std": 1.0})
    x = jnp.ones((2, 28, 28, 1))
    np.testing.assert_array_equal(Hub.open(hub_copy.path).load_model("extra-mlp")(x), model(x))


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mll-jax hub build"):
        Hub.open(tmp_path / "nothing")
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Hub.open(tmp_path)
    (tmp_path / "registry.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "models": {}}))
    with pytest.raises(ValueError, match="format version"):
        Hub.open(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        Hub.create(tmp_path / "file")
