"""A name to a WordNet noun: the lemma's first noun sense, through WordNet's base forms (one rule for catalogs)."""

from __future__ import annotations

import re

from mll_jax.concepts.wordnet import WordNet

__all__ = ["lemma_of", "noun_of"]


def lemma_of(name: str) -> str:
    """A name as WordNet spells lemmas: lower case, words joined by underscores ("Ankle boot" -> "ankle_boot")."""
    return "_".join(re.sub(r"[^a-z0-9' ]", " ", name.lower().replace("_", " ").replace("-", " ")).split())


def noun_of(wn: WordNet, name: str, roots: tuple[str, ...] | None = None) -> str | None:
    """The first noun sense (a synset name) of `name` or of a base form of it, if it lies under one of `roots`
    (any noun without them); None if there is none. Only the first sense counts: a later one is another
    meaning than the name's usual one ("dragon" is not the constellation)."""
    lemma = lemma_of(name)
    for form in wn.base_forms(lemma) if lemma else []:
        senses = wn.synsets(form)
        if senses and (roots is None or any(a.name() in roots for p in senses[0].hypernym_paths() for a in p)):
            return senses[0].name()
    return None
