import pytest
from nltk.corpus.reader.wordnet import WordNetCorpusReader

from mll_jax.concepts import wordnet


def test_lexnames_lists_the_45_lexicographer_files():
    lines = wordnet.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[6] == "06\tnoun.artifact\t1" and lines[44] == "44\tadj.ppl\t3"


def test_reader_from_debian_files(tmp_path):
    import nltk

    root = wordnet.assemble_from_debian(target=tmp_path / "corpora" / "wordnet")
    nltk.data.path.append(str(tmp_path))
    try:
        wn = WordNetCorpusReader(str(root), None)
        shoe = wn.synset("shoe.n.01")
        assert {h.name() for h in wn.synset("sandal.n.01").hypernyms()} == {"shoe.n.01"}
        assert shoe.lexname() == "noun.artifact"
    finally:
        nltk.data.path.remove(str(tmp_path))


def test_missing_debian_files_name_the_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base wordnet-sense-index"):
        wordnet.assemble_from_debian(source=tmp_path, target=tmp_path / "out")
