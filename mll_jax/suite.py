"""The demo suite: target tasks as a user would type them (plurals, synonyms, mixed levels)."""

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
)
