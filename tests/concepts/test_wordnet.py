import random
import shutil

import pytest

from mll_jax.concepts import wordnet


def test_reads_nouns_from_debian_files():
    wn = wordnet.WordNet(wordnet.debian_files())
    shoe = wn.synset("shoe.n.01")
    assert [h.name() for h in wn.synset("sandal.n.01").hypernyms()] == ["shoe.n.01"]
    assert shoe.pos() == "n" and shoe.lemma_names() == ["shoe"]
    assert [s.name() for s in wn.synsets("Sneakers")] == ["gym_shoe.n.01", "fink.n.01"]
    assert (
        wn.base_forms("ankle_boots") == []
        and wn.base_forms("boots") == ["boot"]
        and wn.base_forms("glasses") == ["glasses", "glass"]
    )
    assert wn.offsets("no_such_noun") == () and wn.offsets("") == () and wn.offsets("sandal n") == ()


def test_other_parts_of_speech_and_unknown_names_are_refused():
    wn = wordnet.wordnet()
    with pytest.raises(wordnet.WordNetError, match="only nouns"):
        wn.synset("run.v.01")
    with pytest.raises(wordnet.WordNetError, match="No lemma 'xyzzy'"):
        wn.synset("xyzzy.n.01")
    with pytest.raises(wordnet.WordNetError, match="only has 1 sense"):
        wn.synset("sandal.n.02")


def test_missing_debian_files_name_the_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base wordnet-sense-index"):
        wordnet.debian_files(source=tmp_path)


def test_nltk_zip_corpus_is_read(tmp_path, monkeypatch):
    """nltk's downloader may leave the corpus zipped; it is read from the zip."""
    folder = tmp_path / "unzipped" / "wordnet"
    folder.mkdir(parents=True)
    for name in wordnet.FILES:
        shutil.copyfile(wordnet.DEBIAN_DIR / name, folder / name)
    (tmp_path / "corpora").mkdir()
    shutil.make_archive(str(tmp_path / "corpora" / "wordnet"), "zip", tmp_path / "unzipped", "wordnet")
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))
    files = wordnet.nltk_corpus()
    assert files is not None and all(isinstance(files[name], bytes) for name in wordnet.FILES)
    assert wordnet.WordNet(files).synset("gym_shoe.n.01").definition().startswith("a canvas shoe")


@pytest.fixture(scope="module")
def nltk_reader(tmp_path_factory):
    """nltk's own reader over the same Debian files, to compare with."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    data = tmp_path_factory.mktemp("nltk_data")
    folder = data / "corpora" / "wordnet"
    folder.mkdir(parents=True)
    for entry in wordnet.DEBIAN_DIR.iterdir():
        if entry.is_file():
            shutil.copyfile(entry, folder / entry.name)
    # nltk reads only the numbering of the 45 lexicographer files, which Debian does not ship
    (folder / "lexnames").write_text("".join(f"{i:02d}\tfile{i}\t0\n" for i in range(45)))
    nltk.data.path.append(str(data))  # its constructor looks the corpus up by name too
    try:
        yield WordNetCorpusReader(str(folder), None)
    finally:
        nltk.data.path.remove(str(data))


def _same(ours, theirs) -> None:
    assert ours.name() == theirs.name()
    assert ours.lemma_names() == theirs.lemma_names()
    assert ours.definition() == theirs.definition()
    assert ours.pos() == theirs.pos() and ours.offset() == theirs.offset()
    # nltk keeps pointers in a set, so its order of several hypernyms changes with the hash seed; ours is the file's
    assert sorted(h.name() for h in ours.hypernyms()) == sorted(h.name() for h in theirs.hypernyms())
    assert sorted(h.name() for h in ours.instance_hypernyms()) == sorted(h.name() for h in theirs.instance_hypernyms())
    assert ours.min_depth() == theirs.min_depth()


@pytest.mark.slow
def test_agrees_with_nltk_on_every_noun(nltk_reader):
    """Every noun lemma's senses and base forms, every noun synset's name, lemmas, gloss, hypernyms and depth."""
    ours = wordnet.WordNet(wordnet.debian_files())
    for synset in nltk_reader.all_synsets("n"):
        _same(ours.synset(synset.name()), synset)
    lemmas = list(nltk_reader.all_lemma_names("n"))
    exceptions = list(nltk_reader._exception_map["n"])
    inflected = [w + s for w in lemmas[::7] for s in ("s", "es", "men", "ies")]
    for form in lemmas + exceptions + inflected + ["", "ankle_boots", "t-shirts", "Sneakers"]:
        assert ours.base_forms(form) == nltk_reader._morphy(form, "n"), form
        assert [s.name() for s in ours.synsets(form)] == [s.name() for s in nltk_reader.synsets(form, "n")], form


@pytest.mark.slow
def test_hypernym_paths_agree_with_nltk(nltk_reader):
    ours = wordnet.WordNet(wordnet.debian_files())
    names = [s.name() for s in nltk_reader.all_synsets("n")]
    for name in ["gym_shoe.n.01", "sandal.n.01", "jersey.n.03", *random.Random(0).sample(names, 3000)]:

        def paths(synset):
            return sorted(tuple(s.name() for s in path) for path in synset.hypernym_paths())

        assert paths(ours.synset(name)) == paths(nltk_reader.synset(name)), name
