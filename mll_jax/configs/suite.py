"""The task suites: the reported suite (`DEMO_TASKS`) and the development suite (`DEV_TASKS`).

Tasks are written as a user would type them (plurals, synonyms, mixed levels).
The reported suite is used only by `demo`, `growth` and `report`, on the test
split; every threshold, recipe and design choice is made on the development
suite and names (`DEV_TASKS`, `DEV_NAMES`), on the development split. No class
name of one suite appears in the other.

The last tasks of each suite use names WordNet lacks, or has only in another
sense, or has below the SDAG: matched by hypernyms or by meaning.
"""

from __future__ import annotations

__all__ = ["DEMO_TASKS", "DEV_NAMES", "DEV_TASKS", "OUTSIDE_WORDNET", "spread", "tasks"]

DEMO_TASKS: tuple[tuple[str, ...], ...] = (
    ("sandal", "sneakers", "ankle boot"),
    ("t-shirt", "trousers"),
    ("handbag", "sneakers"),
    ("shirt", "t-shirt"),
    ("pullover", "coat"),
    ("dress", "coat", "shirt"),
    ("sandals", "handbag", "trousers"),
    ("t-shirt", "pullover", "dress", "coat", "shirt"),
    ("footwear", "clothing", "bag"),
    ("boots", "dresses"),
    ("pants", "jumper"),
    ("sneaker", "sandal"),
    ("shirts", "coats", "pullovers", "dresses"),
    ("purse", "ankle boots", "tee shirt"),
    ("shoes", "boots"),
    ("trainers", "frock"),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal"),
    ("Shirt", "Sneaker", "Bag", "Ankle boot"),
    ("garment", "footwear"),
    ("coat", "jersey", "slipover"),
    ("handbags", "sandals", "sneakers", "boots"),
    ("trousers", "dress", "bag", "sandal", "sneaker", "t-shirt"),
    ("overgarment", "sweater"),
    ("shirt", "pullover"),
    ("sneakers", "handbag", "shirt"),
    ("puffer jacket", "shirt", "trousers"),
    ("maxi dress", "pullover", "sandal"),
    ("kicks", "sandal", "ankle boot"),
    ("tee", "trousers", "handbag"),
    ("mini dress", "kicks", "puffer jacket", "bag"),
    ("jeans", "sweatshirt", "polo shirt"),
)
OUTSIDE_WORDNET = {
    "puffer jacket": "coat.n.01",
    "maxi dress": "dress.n.01",
    "mini dress": "dress.n.01",
    "kicks": "gym_shoe.n.01",
    "tee": "jersey.n.03",
    "jeans": "trouser.n.01",
    "sweatshirt": "pullover.n.01",
    "polo shirt": "shirt.n.01",
}  # name -> the node it must match


DEV_TASKS: tuple[tuple[str, ...], ...] = (
    ("gym shoes", "boot", "handbag purse"),
    ("tee shirts", "pair of trousers"),
    ("pocketbook", "tennis shoes"),
    ("shirt.n.01", "jersey.n.03"),
    ("sweaters", "overcoat"),
    ("gown", "raincoat", "dress shirt"),
    ("espadrilles", "shoulder bag", "slacks"),
    ("jersey.n.03", "pullover.n.01", "sundress", "jacket", "flannel shirt"),
    ("footgear", "apparel", "clutch bag"),
    ("cowboy boots", "evening dress"),
    ("chinos", "sweater vest"),
    ("running shoes", "sandal.n.01"),
    ("oxford shirt", "anorak", "sweater.n.01", "sheath"),
    ("tote bag", "wellingtons", "turtleneck"),
    ("trainer shoes", "hiking boots"),
    ("cargo pants", "parka", "backpack"),
    ("trench coat", "knickers", "rain boots"),
    ("bomber jacket", "crossbody bag", "chelsea boots"),
)
DEV_NAMES = {
    # name -> the node it should match (None: nothing in the SDAG). Written down before the threshold
    # sweep (`benchmarks/matching.py`) read a cosine; names with no single right node (briefcase, tunic,
    # tank top) are left out.
    "running shoes": "gym_shoe.n.01",
    "trainer shoes": "gym_shoe.n.01",
    "backpack": "bag.n.04",
    "tote bag": "bag.n.04",
    "crossbody bag": "bag.n.04",
    "clutch bag": "bag.n.04",
    "shoulder bag": "bag.n.04",
    "chelsea boots": "boot.n.01",
    "hiking boots": "boot.n.01",
    "rain boots": "boot.n.01",
    "cowboy boots": "boot.n.01",
    "wellingtons": "boot.n.01",
    "espadrilles": "sandal.n.01",
    "cargo pants": "trouser.n.01",
    "joggers": "trouser.n.01",
    "slacks": "trouser.n.01",
    "chinos": "trouser.n.01",
    "sweatpants": "trouser.n.01",
    "sweater vest": "pullover.n.01",
    "hoodie": "pullover.n.01",
    "blouse": "shirt.n.01",
    "flannel shirt": "shirt.n.01",
    "oxford shirt": "shirt.n.01",
    "dress shirt": "shirt.n.01",
    "evening dress": "dress.n.01",
    "gown": "dress.n.01",
    "sundress": "dress.n.01",
    "overcoat": "coat.n.01",
    "raincoat": "coat.n.01",
    "trench coat": "coat.n.01",
    "parka": "coat.n.01",
    "anorak": "coat.n.01",
    "bomber jacket": "coat.n.01",
    **dict.fromkeys(
        ["sock", "scarf", "wallet", "hat", "glove", "belt", "watch", "umbrella", "necklace", "necktie"], None
    ),  # worn or carried, but no store concept
    **dict.fromkeys(["laptop", "giraffe", "car", "banana", "piano", "sofa", "lamp", "guitar", "pizza", "tiger"], None),
}


def tasks(split: str) -> tuple[tuple[str, ...], ...]:
    """The suite of a split: the reported suite on 'test', the development suite on 'dev'."""
    suites = {"test": DEMO_TASKS, "dev": DEV_TASKS}
    if split not in suites:
        raise ValueError(f"unknown split {split!r}; use 'test' (reported results) or 'dev' (design choices)")
    return suites[split]


def spread(tasks: tuple, count: int | None) -> tuple:
    """`count` of `tasks`, evenly spread over them (all of them for None)."""
    if count is None:
        return tasks
    if not 1 <= count <= len(tasks):
        raise ValueError(f"the suite has {len(tasks)} tasks; ask for 1 to {len(tasks)}, got {count}")
    return tuple(tasks[round(i * (len(tasks) - 1) / max(count - 1, 1))] for i in range(count))
