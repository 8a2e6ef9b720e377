"""Which photograph pictures which WordNet noun: the rule that writes the `photos` catalog.

A stamp of Debian's Tux Paint set is kept if its top folder is one of `ROOTS` (things:
no symbols, signs, people or seasons) and it lies in no `cartoon` folder. Its English
description ("A male black rhino.", its article dropped, cut at a comma or bracket) and
then its file name ("rhino_black") are looked up, each whole and then without leading
words ("black rhino", "rhino"), as nouns under its folder's roots (`naming.noun_of`):
the first hit is its concept. The rule was fixed before any model met a photograph;
the catalog it writes is committed and a test rewrites it.

    python -m mll_jax.concepts.photo_catalog   # rewrites mll_jax/data/catalogs/photos.json
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from mll_jax.concepts import naming
from mll_jax.concepts.wordnet import WordNet, wordnet
from mll_jax.data import datasets, photos

__all__ = ["ROOTS", "build", "concept_of"]

_ARTIFACT = ("artifact.n.01",)
ROOTS = {  # top folder -> what its stamps must picture
    "animals": ("animal.n.01",),
    "food": ("food.n.01", "food.n.02", "plant_part.n.01"),
    "plants": ("plant.n.02", "plant_part.n.01"),
    "vehicles": _ARTIFACT,
    "household": _ARTIFACT,
    "clothes": _ARTIFACT,
    "hobbies": _ARTIFACT,
    "sports": _ARTIFACT,
    "medical": _ARTIFACT,
}
CATALOG = Path(__file__).parents[1] / "data" / "catalogs" / "photos.json"


def _phrases(stamp: str, described: str) -> list[str]:
    text = described.lower().split(",")[0].split("(")[0].strip().rstrip(".!")
    text = re.sub(r"^(a|an|the|two|some|pair of)\s+", "", text)
    stem = re.sub(r"[_\-]?\d+$", "", Path(stamp).stem).replace("_", " ").replace("-", " ").lower()
    out = []
    for phrase in dict.fromkeys(p for p in (text, stem) if p):
        words = phrase.split()
        out += [" ".join(words[i:]) for i in range(len(words))]
    return out


def concept_of(wn: WordNet, stamp: str, described: str) -> str | None:
    """The WordNet noun (a synset name) stamp `stamp` pictures, or None if it is no photograph of a thing."""
    parts = Path(stamp).parts
    roots = ROOTS.get(parts[0])
    if roots is None or "cartoon" in parts:
        return None
    return next((n for n in (naming.noun_of(wn, p, roots) for p in _phrases(stamp, described)) if n), None)


def build(wn: WordNet | None = None) -> dict:
    """The catalog: every concept some photograph pictures, with its stamps."""
    wn = wn or wordnet()
    by_concept: dict[str, list[str]] = defaultdict(list)
    for stamp in photos.stamps():
        if (synset := concept_of(wn, stamp, photos.description(stamp))) is not None:
            by_concept[synset].append(stamp)
    classes = []
    for synset, stamps in sorted(by_concept.items()):
        classes.append(naming.catalog_class(wn, len(classes), synset) | {"stamps": stamps})
    return {
        "name": "photos",
        "description": "Photo cut-outs of things (animals, food, plants, vehicles, household objects, clothes, "
        "instruments, sport gear) from Tux Paint's stamps, 64x64 RGB on white; a test-only style of the open world; "
        "one WordNet noun per stamp, by the rule of concepts/photo_catalog.py.",
        "source": "Debian tuxpaint-stamps-default 2022.06.04-1",
        "licence": "GPL-2 (Bill Kendrick and the Tux Paint contributors)",
        "classes": classes,
    }


if __name__ == "__main__":
    CATALOG.write_text(datasets.catalog_text(written := build()))
    shared = {c["synset"] for c in json.loads((CATALOG.parent / "emoji.json").read_text())["classes"]}
    both = [c for c in written["classes"] if c["synset"] in shared]
    print(f"{CATALOG}: {len(written['classes'])} concepts; {len(both)} of them emoji concepts too")
