"""Which emoji picture which WordNet noun: the rule that writes the `emoji` catalog.

Only emoji that picture one thing are kept: those of the `THINGS` categories whose
name holds no word of `NOT_A_THING` and no "and", "with" or "of". A kept emoji's name
(lower case, whole, or with a trailing "face" dropped) is looked up in WordNet through
its base forms, and its concept is the first noun sense, in WordNet's order, under the
roots of its subcategory (`ROOTS`: an animal emoji pictures an animal, so "tiger" is
the cat, not a fierce person; any other thing is an artifact). People, faces, flags
and symbols are other categories, never kept. Emoji of one concept are pictures of it (a
dog and a dog's face). The rule was fixed before any model met an emoji; the catalog it
writes is committed and a test rewrites it.

    python -m mll_jax.concepts.emoji_catalog   # rewrites mll_jax/data/catalogs/emoji.json
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from mll_jax.concepts import naming
from mll_jax.concepts.wordnet import WordNet, wordnet
from mll_jax.data import datasets, emoji

__all__ = ["ARTIFACT", "MIN_STYLES", "NOT_A_THING", "ROOTS", "THINGS", "build", "concept_of", "roots_of"]

THINGS = ("Animals & Nature", "Food & Drink", "Objects", "Travel & Places", "Activities")  # emoji categories kept
ARTIFACT = ("artifact.n.01",)
ROOTS = {  # subcategory (or its part before "-") -> what its emoji must picture; any other: an artifact
    "animal": ("animal.n.01",),
    "plant": ("plant.n.02", "plant_part.n.01"),
    "food": ("food.n.01", "food.n.02", "plant_part.n.01"),
    "drink": ("food.n.01", "food.n.02"),
    "place-geographic": ("natural_object.n.01", "geological_formation.n.01"),
    "sky & weather": ("natural_object.n.01", "artifact.n.01"),
}
NOT_A_THING = ("sign", "symbol", "suit", "silhouette", "button", "mark", "arrow", "letter", "map")
MIN_STYLES = 2  # a concept is listed when at least this many styles draw it (a style alone teaches nothing)
CATALOG = Path(__file__).parents[1] / "data" / "catalogs" / "emoji.json"


def roots_of(entry: dict) -> tuple[str, ...] | None:
    """The WordNet roots emoji `entry`'s concept must lie under, or None if its category pictures no thing."""
    if entry["category"] not in THINGS:
        return None
    sub = entry["subcategory"]
    return ROOTS.get(sub) or ROOTS.get(sub.split("-")[0]) or ARTIFACT


def concept_of(wn: WordNet, entry: dict) -> str | None:
    """The WordNet noun (a synset name) emoji `entry` of emoji-datasource pictures, or None."""
    roots = roots_of(entry)
    name = (entry["name"] or "").lower()
    words = re.findall(r"[a-z]+", name)
    if roots is None or set(words) & set(NOT_A_THING) or set(words) & {"and", "with", "of"}:  # two things, a scene
        return None
    names = [name, name.removesuffix(" face")]  # a dog's face pictures a dog
    return next((n for n in (naming.noun_of(wn, name, roots) for name in dict.fromkeys(names)) if n), None)


def build(wn: WordNet | None = None) -> dict:
    """The catalog: every concept some emoji pictures, with its emoji and the styles that draw them."""
    wn = wn or wordnet()
    by_concept: dict[str, list[str]] = defaultdict(list)
    for entry in emoji.entries():
        if (synset := concept_of(wn, entry)) is not None:
            by_concept[synset].append(entry["unified"])
    drawn = {style: set(emoji.drawn(style)) for style in emoji.STYLES}
    classes = []
    for synset, codes in sorted(by_concept.items()):
        styles = [s for s in emoji.STYLES if drawn[s] & set(codes)]
        if len(styles) < MIN_STYLES:
            continue
        classes.append(naming.catalog_class(wn, len(classes), synset) | {"emoji": codes, "styles": styles})
    return {
        "name": "emoji",
        "description": "Emoji that picture things (animals, plants, food, objects, vehicles, sport gear), "
        "64x64 RGB on white, in five styles; one WordNet noun per emoji, by the rule of concepts/emoji_catalog.py.",
        "source": "npm emoji-datasource-google 16.0.0, emoji-datasource-twitter 16.0.0, "
        "@lobehub/fluent-emoji-3d 1.1.0, @lobehub/fluent-emoji-flat 1.1.0, openmoji 17.0.0",
        "licence": "google: Noto Emoji, Apache-2.0 (Google); twitter: Twemoji graphics, CC-BY-4.0 (Twitter); "
        "fluent_3d, fluent_flat: Fluent Emoji, MIT (Microsoft); openmoji: CC-BY-SA-4.0 (OpenMoji); "
        "emoji-datasource's table: MIT (Cal Henderson)",
        "classes": classes,
    }


if __name__ == "__main__":
    CATALOG.write_text(datasets.catalog_text(written := build()))
    four = sum(len(c["styles"]) >= 4 for c in written["classes"])
    print(f"{CATALOG}: {len(written['classes'])} concepts, {four} drawn in at least four styles")
