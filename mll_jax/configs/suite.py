"""The demo suite: target tasks as a user would type them (plurals, synonyms, mixed levels).

The last six use names WordNet lacks, or has only in another sense ('kicks',
'tee'), or has below the SDAG ('jeans'): matched by hypernyms or by meaning.
"""

from __future__ import annotations

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


def spread(tasks: tuple, count: int | None) -> tuple:
    """`count` of `tasks`, evenly spread over them (all of them for None)."""
    if count is None:
        return tasks
    if not 1 <= count <= len(tasks):
        raise ValueError(f"the suite has {len(tasks)} tasks; ask for 1 to {len(tasks)}, got {count}")
    return tuple(tasks[round(i * (len(tasks) - 1) / max(count - 1, 1))] for i in range(count))
