"""WordNet's nouns, read from its database files: nltk's downloaded corpus if there is one, else Debian's.

Not nltk's reader, for start-up time: importing any part of nltk runs `nltk/__init__`, which
imports most of nltk, scikit-learn and scipy (seconds), and `WordNetCorpusReader()` parses
every index file and `index.sense` for multilingual mappings nothing here uses (more seconds).
mll_jax needs only nouns, a few at a time, so this looks each lemma up in `index.noun` by
binary search (the files are sorted, which is how WordNet's own library reads them) and each
synset's line in `data.noun` at its offset. Names, sense order, glosses and base forms follow
nltk 3.10's reader, which tests/concepts/test_wordnet.py checks on every noun.
"""

from __future__ import annotations

import functools
import mmap
import os
import re
import sys
import zipfile
from pathlib import Path

__all__ = ["DEBIAN_DIR", "FILES", "Synset", "WordNet", "WordNetError", "debian_files", "nltk_corpus", "wordnet"]

DEBIAN_DIR = Path("/usr/share/wordnet")
_INSTALL_HINT = "sudo apt-get install wordnet-base wordnet-sense-index"
FILES = ("index.noun", "data.noun", "noun.exc")
_NOUN = "n"
# nltk's detachment rules for nouns (WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS['n']), in its order.
_SUBSTITUTIONS = (
    ("s", ""),
    ("ses", "s"),
    ("ves", "f"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
)


class WordNetError(ValueError):
    """A name or offset that WordNet's nouns do not have."""


class Synset:
    """One noun synset, with the accessors of nltk's `Synset` that mll_jax uses."""

    def __init__(self, reader: WordNet, line: str) -> None:
        columns, gloss = line.strip().split("|")
        self._definition = re.sub(r"[\"].*?[\"]", "", gloss).strip().strip("; ")  # examples are quoted
        tokens = columns.split()
        self._reader, self._offset, self._pos = reader, int(tokens[0]), tokens[2]
        count = int(tokens[3], 16)
        # A trailing '(a)'-style syntactic marker is not part of the name (nltk strips it too).
        self._lemma_names = [re.match(r"(.*?)(\([^()]*\))?$", tokens[4 + 2 * i]).group(1) for i in range(count)]
        start = 5 + 2 * count
        pointers: dict[str, dict[int, None]] = {}  # symbol -> target offsets, in file order, without repeats
        for i in range(int(tokens[start - 1])):
            symbol, offset, pos, lemmas = tokens[start + 4 * i : start + 4 * i + 4]
            if lemmas == "0000" and pos == _NOUN:  # between synsets, not lemmas
                pointers.setdefault(symbol, {})[int(offset)] = None
        self._pointers = pointers
        first = self._lemma_names[0].lower()
        self._name = f"{first}.{self._pos}.{reader.offsets(first).index(self._offset) + 1:02d}"

    def name(self) -> str:
        return self._name

    def pos(self) -> str:
        return self._pos

    def offset(self) -> int:
        return self._offset

    def lemma_names(self) -> list[str]:
        return list(self._lemma_names)

    def definition(self) -> str:
        return self._definition

    def _related(self, symbol: str) -> list[Synset]:
        return [self._reader.synset_at(offset) for offset in self._pointers.get(symbol, ())]

    def hypernyms(self) -> list[Synset]:
        return self._related("@")

    def instance_hypernyms(self) -> list[Synset]:
        return self._related("@i")

    def hypernym_paths(self) -> list[list[Synset]]:
        """Every path from a root down to this synset."""
        above = self.hypernyms() + self.instance_hypernyms()
        return [path + [self] for h in above for path in h.hypernym_paths()] if above else [[self]]

    @functools.cached_property
    def _min_depth(self) -> int:
        above = self.hypernyms() + self.instance_hypernyms()
        return 1 + min(h.min_depth() for h in above) if above else 0

    def min_depth(self) -> int:
        """Length of the shortest hypernym path to a root."""
        return self._min_depth

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Synset) and self._name == other._name

    def __lt__(self, other: Synset) -> bool:
        return self._name < other._name

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f"Synset('{self._name}')"


class WordNet:
    """The noun database over the bytes of `index.noun`, `data.noun` and `noun.exc`."""

    def __init__(self, files: dict[str, bytes | mmap.mmap]) -> None:
        self._index, self._data = files["index.noun"], files["data.noun"]
        self._exceptions = {}  # inflected form -> base forms; a later line wins, as in nltk
        for line in files["noun.exc"][:].decode().splitlines():
            if terms := line.split():
                self._exceptions[terms[0]] = terms[1:]
        self._synsets: dict[int, Synset] = {}
        self._offsets: dict[str, tuple[int, ...]] = {}

    def offsets(self, lemma: str) -> tuple[int, ...]:
        """The data.noun offsets of `lemma`'s senses, most frequent first; () if it is no noun."""
        if lemma not in self._offsets:
            found = ()
            if line := self._index_line(lemma.encode()):
                tokens = line.split()  # lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt offsets
                start = 6 + int(tokens[3])
                found = tuple(int(t) for t in tokens[start : start + int(tokens[2])])
            self._offsets[lemma] = found
        return self._offsets[lemma]

    def _index_line(self, key: bytes) -> bytes | None:
        """Binary search of the sorted index; its licence lines, which start with spaces, sort first."""
        if not key or b" " in key or b"\n" in key:
            return None
        buf, lo, hi = self._index, 0, len(self._index)
        while lo < hi:
            mid = (lo + hi) // 2
            start = buf.rfind(b"\n", 0, mid) + 1
            end = buf.find(b"\n", start)
            end = len(buf) if end < 0 else end
            line = buf[start:end]
            word = line.split(b" ", 1)[0]
            if word == key:
                return line
            if word < key:
                lo = end + 1
            else:
                hi = start
        return None

    def synset_at(self, offset: int) -> Synset:
        if offset not in self._synsets:
            line = self._data[offset : self._data.find(b"\n", offset)].decode()
            if not line.startswith(f"{offset:08d} "):
                raise WordNetError(f"no WordNet noun synset at offset {offset}")
            self._synsets[offset] = Synset(self, line)
        return self._synsets[offset]

    def synset(self, name: str) -> Synset:
        """The synset named like 'sandal.n.01': the lemma's n-th sense."""
        lemma, pos, number = name.lower().rsplit(".", 2)
        _check_pos(pos)
        offsets = self.offsets(lemma)
        if not offsets:
            raise WordNetError(f"No lemma {lemma!r} with part of speech {pos!r}")
        if not 1 <= int(number) <= len(offsets):
            raise WordNetError(f"Lemma {lemma!r} with part of speech {pos!r} only has {len(offsets)} sense(s)")
        return self.synset_at(offsets[int(number) - 1])

    def base_forms(self, form: str) -> list[str]:
        """`form` and its base forms that are nouns: the exception list's, else the detachment rules'.

        nltk's `_morphy(form, 'n')`; its public `morphy` returns only the first of them."""
        if form in self._exceptions:
            forms = self._exceptions[form]
        else:
            forms = [form[: -len(old)] + new for old, new in _SUBSTITUTIONS if form.endswith(old)]
        return [f for f in dict.fromkeys([form, *forms]) if self.offsets(f)]

    def synsets(self, lemma: str, pos: str = _NOUN) -> list[Synset]:
        """The noun senses of `lemma` (lower-cased) and of its base forms, most frequent first."""
        _check_pos(pos)
        return [self.synset_at(o) for form in self.base_forms(lemma.lower()) for o in self.offsets(form)]


def _check_pos(pos: str) -> None:
    if pos != _NOUN:
        raise WordNetError(f"only nouns are read (part of speech 'n'), not {pos!r}")


def _nltk_data_dirs() -> list[Path]:
    """nltk.data.path's folders on Unix, without importing nltk (whose `__init__` imports scipy)."""
    dirs = [Path(d).expanduser() for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    dirs.append(Path("~/nltk_data").expanduser())
    dirs += [Path(sys.prefix, *parts, "nltk_data") for parts in ((), ("share",), ("lib",))]
    return dirs + [Path(p, "nltk_data") for p in ("/usr/share", "/usr/local/share", "/usr/lib", "/usr/local/lib")]


def _mapped(directory: Path) -> dict[str, mmap.mmap]:
    files = {}
    for name in FILES:
        with open(directory / name, "rb") as f:
            files[name] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # pages are read when looked at
    return files


def nltk_corpus() -> dict[str, bytes | mmap.mmap] | None:
    """The files of nltk's downloaded 'wordnet' corpus (a folder, or the zip nltk leaves), if there is one."""
    for data in _nltk_data_dirs():
        folder = data / "corpora" / "wordnet"
        if all((folder / name).is_file() for name in FILES):
            return _mapped(folder)
        if (data / "corpora" / "wordnet.zip").is_file():
            with zipfile.ZipFile(data / "corpora" / "wordnet.zip") as z:
                if all(f"wordnet/{name}" in z.namelist() for name in FILES):
                    return {name: z.read(f"wordnet/{name}") for name in FILES}
    return None


def debian_files(source: Path = DEBIAN_DIR) -> dict[str, mmap.mmap]:
    """Debian's WordNet files (`wordnet-base`), or a FileNotFoundError naming the packages to install."""
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet not found: nltk has no 'wordnet' corpus and {source} lacks "
            f"{', '.join(missing)}. Install it with: {_INSTALL_HINT}"
        )
    return _mapped(source)


@functools.cache
def wordnet() -> WordNet:
    """The WordNet nouns (cached): nltk's corpus, else Debian's files."""
    return WordNet(nltk_corpus() or debian_files())
