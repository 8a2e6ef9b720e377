"""The open world's styles side by side: a few concepts (rows) as every emoji style and the photographs draw them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mll_jax.data import datasets, emoji

__all__ = ["STYLES", "draw", "shared_concepts"]

STYLES = (*(f"emoji:{s}" for s in emoji.STYLES), "photos")


def _by_synset(source: str) -> dict[str, np.ndarray]:
    """The first picture of each concept in `source`."""
    d = datasets.load(source, "test" if source == "photos" else datasets.WHOLE)
    first = {}
    for image, label in zip(d.images, d.labels):
        first.setdefault(d.classes[label]["synset"], image)
    return first


def shared_concepts(pictures: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """The concepts every source pictures, sorted."""
    return sorted(set.intersection(*(set(p) for p in pictures.values())))


def draw(path: Path, concepts: int = 8) -> list[str]:
    """Write a PNG of `concepts` concepts (spread over those every style pictures) in every style; returns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pictures = {source: _by_synset(source) for source in STYLES}
    shared = shared_concepts(pictures)
    if not shared:
        raise ValueError("no concept is pictured by every style")
    chosen = [shared[i] for i in np.linspace(0, len(shared) - 1, min(concepts, len(shared))).round().astype(int)]
    fig, axes = plt.subplots(len(chosen), len(STYLES), figsize=(1.3 * len(STYLES), 1.3 * len(chosen)), squeeze=False)
    for row, synset in enumerate(chosen):
        for col, source in enumerate(STYLES):
            ax = axes[row, col]
            ax.imshow(pictures[source][synset])
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(source.removeprefix("emoji:"), fontsize=8)
            if col == 0:
                ax.set_ylabel(synset.split(".")[0].replace("_", " "), fontsize=8)
    fig.suptitle(f"{len(shared)} concepts in all {len(STYLES)} styles; {len(chosen)} shown", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return chosen
