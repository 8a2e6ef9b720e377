"""`folder:PATH`: a user's own images, one sub-folder per class, made here from the emoji sources."""

import json

import numpy as np
import pytest
from PIL import Image

from mll_jax import cli
from mll_jax.concepts import folder_catalog, sdag
from mll_jax.configs.specs import StoreSpec
from mll_jax.data import datasets, emoji, store

pytestmark = pytest.mark.store_independent

CLASSES = {"dog": "1F415", "Bicycle": "1F6B2", "tulips": "1F337", "alarm clock": "23F0"}  # as users name folders


def _write(root, style: str) -> dict[str, np.ndarray]:
    drawn = emoji.pictures(style, list(CLASSES.values()))
    for name, code in CLASSES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(drawn[code]).save(root / name / f"{style}.png")
    return drawn


def test_a_folder_of_splits_is_matched_to_wordnet_and_loads_as_written(tmp_path, capsys):
    train = {s: _write(tmp_path / "train", s) for s in ("google", "twitter")}
    test = _write(tmp_path / "test", "openmoji")
    assert cli.main(["sources", "match", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    by_name = {c["name"]: c["synset"] for c in json.loads((tmp_path / "catalog.json").read_text())["classes"]}
    assert by_name == {"Bicycle": "bicycle.n.01", "alarm clock": "alarm_clock.n.01", "dog": "dog.n.01"} | {
        "tulips": "tulip.n.01"
    }
    emoji_synsets = {c["synset"] for c in datasets.catalog("emoji")["classes"]}
    assert set(by_name.values()) <= emoji_synsets  # named as the emoji catalog names them
    loaded = datasets.load(f"folder:{tmp_path}", "train")
    assert loaded.images.shape == (8, emoji.SIZE, emoji.SIZE, 3) and loaded.images.dtype == np.uint8
    names = [c["name"] for c in loaded.classes]
    assert names == sorted(CLASSES) and loaded.synsets == [by_name[n] for n in names]
    for k, name in enumerate(names):  # files in sorted order: google, then twitter
        got = loaded.images[loaded.labels == k]
        np.testing.assert_array_equal(got, np.stack([train[s][CLASSES[name]] for s in ("google", "twitter")]))
    held_out = datasets.load(f"folder:{tmp_path}", "test")
    np.testing.assert_array_equal(held_out.images, np.stack([test[CLASSES[n]] for n in names]))
    with pytest.raises(ValueError, match="not 'validation'"):
        datasets.load(f"folder:{tmp_path}", "validation")


def test_a_flat_folder_is_one_split_and_feeds_an_sdag(tmp_path):
    _write(tmp_path, "fluent_3d")
    folder_catalog.match(tmp_path)
    whole = datasets.load(f"folder:{tmp_path}", "all")
    assert len(whole) == len(CLASSES)
    with pytest.raises(ValueError, match="split='all'"):
        datasets.load(f"folder:{tmp_path}", "train")
    sample = store.SampleStore(
        StoreSpec(source=f"folder:{tmp_path}"),
        whole.images,
        whole.labels,
        tuple(whole.synsets),
        tuple(tuple(c["lemmas"]) for c in whole.classes),
    )
    graph = sdag.build(sample)
    assert set(whole.synsets) <= set(graph.graph.nodes)
    assert graph.graph.nodes["tulip.n.01"]["lemmas"] == ["tulip", "tulips"]  # the folder's name, a lemma


def test_bad_folders_are_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image folder"):
        datasets.load(f"folder:{tmp_path / 'nowhere'}", "all")
    _write(tmp_path, "google")
    with pytest.raises(FileNotFoundError, match="mll-jax sources match"):
        datasets.load(f"folder:{tmp_path}", "all")
    (tmp_path / "zqxv blorp").mkdir()
    Image.new("RGB", (emoji.SIZE, emoji.SIZE)).save(tmp_path / "zqxv blorp" / "a.png")
    with pytest.raises(ValueError, match=r"no WordNet noun for class folder\(s\) \['zqxv blorp'\]"):
        folder_catalog.match(tmp_path)
    with pytest.raises(ValueError, match="gives no synset for"):
        datasets.load(f"folder:{tmp_path}", "all")
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    catalog["classes"][-1]["synset"] = "cat.n.01"  # the user's fix, kept by the next match
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    assert folder_catalog.match(tmp_path)["classes"][-1]["synset"] == "cat.n.01"
    assert len(datasets.load(f"folder:{tmp_path}", "all")) == len(CLASSES) + 1
    Image.new("RGB", (32, 32)).save(tmp_path / "dog" / "small.png")
    with pytest.raises(ValueError, match="resize them to one size"):
        datasets.load(f"folder:{tmp_path}", "all")
    (tmp_path / "dog" / "small.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image Pillow reads"):
        datasets.load(f"folder:{tmp_path}", "all")
