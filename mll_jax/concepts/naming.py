"""A name to a WordNet noun: the lemma's first noun sense, through WordNet's base forms (one rule for catalogs)."""

from __future__ import annotations

import re

from mll_jax.concepts.wordnet import WordNet

__all__ = ["catalog_class", "lemma_of", "noun_of"]


def lemma_of(name: str) -> str:
    """A name as WordNet spells lemmas: lower case, words joined by underscores ("Ankle boot" -> "ankle_boot")."""
    return "_".join(re.sub(r"[^a-z0-9' ]", " ", name.lower().replace("_", " ").replace("-", " ")).split())


def noun_of(wn: WordNet, name: str, roots: tuple[str, ...] | None = None) -> str | None:
    """The first noun sense, in WordNet's order, of `name` or of a base form of it that lies under one of `roots`
    (a synset name; without roots, the first sense); None if there is none. Roots say what kind of thing the
    name must be: "tiger" under animal.n.01 is the cat, not its first sense (a fierce person)."""
    lemma = lemma_of(name)
    for form in wn.base_forms(lemma) if lemma else []:
        for sense in wn.synsets(form):
            if roots is None or any(a.name() in roots for p in sense.hypernym_paths() for a in p):
                return sense.name()
    return None


def catalog_class(wn: WordNet, label: int, synset: str) -> dict:
    """A catalog's class for `synset`: its label, its first lemma as the name, and its other lemmas."""
    lemmas = [lemma.replace("_", " ") for lemma in wn.synset(synset).lemma_names()]
    return {"label": label, "name": lemmas[0], "synset": synset, "lemmas": lemmas[1:]}
