"""WordNet access: nltk's corpus if installed, else Debian's wordnet files.

Debian's `wordnet-base` + `wordnet-sense-index` ship the database files but not
`lexnames`, which nltk's reader needs; it is the fixed list of the 45
lexicographer files, so we write it ourselves into an nltk-style data folder.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from nltk.corpus.reader.wordnet import WordNetCorpusReader

from mll_jax import paths

DEBIAN_DIR = Path("/usr/share/wordnet")
INSTALL_HINT = "sudo apt-get install wordnet-base wordnet-sense-index"

_LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_SYNTACTIC_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
_NEEDED = [f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")]


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))


def _nltk_corpus_root() -> Path | None:
    import nltk

    try:
        return Path(str(nltk.data.find("corpora/wordnet")))
    except LookupError:
        return None


def assemble_from_debian(source: Path = DEBIAN_DIR, target: Path | None = None) -> Path:
    """Link Debian's WordNet files into an nltk data folder and add `lexnames`."""
    missing = [name for name in _NEEDED if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet not found: nltk has no 'wordnet' corpus and {source} lacks "
            f"{', '.join(missing)}. Install it with: {INSTALL_HINT}"
        )
    target = target or _data_root() / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    # Copies, not links: nltk refuses paths that resolve outside its data roots.
    for entry in source.iterdir():
        copy = target / entry.name
        if entry.is_file() and not copy.exists():
            tmp = copy.with_suffix(".tmp")
            shutil.copyfile(entry, tmp)
            os.replace(tmp, copy)
    lexnames = target / "lexnames"
    if not lexnames.exists():
        tmp = lexnames.with_suffix(".tmp")
        tmp.write_text(lexnames_text())
        os.replace(tmp, lexnames)
    return target


def _data_root() -> Path:
    return paths.cache_dir() / "nltk_data"


@functools.cache
def wordnet() -> WordNetCorpusReader:
    """The WordNet reader (cached): nltk's corpus, else Debian's files."""
    import nltk

    root = _nltk_corpus_root()
    if root is None:
        root = assemble_from_debian()
        if str(_data_root()) not in nltk.data.path:
            nltk.data.path.append(str(_data_root()))
    return WordNetCorpusReader(str(root), None)
