"""The catalog of a user's image folder (`folder:PATH`): each class folder's name matched to a WordNet noun.

A name is matched as catalogs are (`naming.noun_of`: its first noun sense). A name with
no noun is written with a null synset and refused with the fix (rename the folder, or
write its synset by hand); synsets already in the catalog (a user's fixes) are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from mll_jax.concepts import naming
from mll_jax.concepts.wordnet import WordNet, wordnet
from mll_jax.data import folder

__all__ = ["match"]


def match(path: Path, wn: WordNet | None = None) -> dict:
    """Write `path`/catalog.json for the image folder at `path` and return it. A catalog already there keeps the
    synsets it gives (a user's fixes), for the classes it still names."""
    wn = wn or wordnet()
    path = Path(path)
    kept = {}
    if (path / folder.CATALOG).is_file():
        kept = {c["name"]: c for c in json.loads((path / folder.CATALOG).read_text())["classes"]}
    classes, unmatched = [], []
    for name in folder.class_folders(path):
        synset = kept[name]["synset"] if kept.get(name, {}).get("synset") else naming.noun_of(wn, name)
        known = [] if synset is None else [x.replace("_", " ").lower() for x in wn.synset(synset).lemma_names()]
        spoken = naming.lemma_of(name).replace("_", " ")  # the folder's name is a lemma of its node, as typed
        classes.append({"name": name, "synset": synset, "lemmas": [] if spoken in known else [spoken]})
        if synset is None:
            unmatched.append(name)
    catalog = {"name": path.name, "source": f"folder:{path}", "classes": classes}
    (path / folder.CATALOG).write_text(json.dumps(catalog, indent=1) + "\n")
    if unmatched:
        raise ValueError(
            f"no WordNet noun for class folder(s) {unmatched} of {path}: rename them to a noun WordNet knows, or "
            f'write their synsets (e.g. "dog.n.01") into {path / folder.CATALOG}, where they are null'
        )
    return catalog
