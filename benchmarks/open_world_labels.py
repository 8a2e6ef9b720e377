"""How the labelling rule reads experts of one domain on the open world (issue 28 item 3).

    python benchmarks/open_world_labels.py [--hub PATH] [--split development] [--json out/open_world_labels.json]

Runs every expert of a hub (the Fashion-MNIST demo hub by default) on every image of
an open-world split (`data/world.py`: emoji, Fashion-MNIST and digits on one 64x64
RGB canvas, each model seeing them at its own input shape; development by default,
where rules are chosen) and labels each head. Per model: the concepts its heads fire
on (`labeling.rule`) inside its declared classes and outside them. Overall: the
precision and recall of (head, concept) labels against the classes each head was
trained on, for the rule and for rules that also ask a head's probabilities to rank
the concept's images above the rest (AUC at least t): whether any statistic of a
head's outputs tells its own concepts from pictures of other domains. And for a rule
that reads the model's declared names for its domain: a head fires only on concepts
under the deepest SDAG node above all of its model's declared classes.
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np
from common import save

import mll_jax as mll
from mll_jax import engine, paths
from mll_jax.concepts import matching, sdag
from mll_jax.configs.open_world import STORE_SPEC
from mll_jax.data import datasets, store, world
from mll_jax.labeling import rule

AUC_LEVELS = (0.9, 0.99)


def ranking_auc(scores: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Per concept (column of bool `members` [N, K]), the AUC of `scores` [N] ranking its images above the rest."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    positives = members.sum(0)
    negatives = len(scores) - positives
    return (ranks @ members - positives * (positives + 1) / 2) / np.maximum(positives * negatives, 1)


def declared_region(graph: sdag.SDAG, nodes: set[str]) -> frozenset[str]:
    """The concepts under the deepest node that is an ancestor (or itself) of every one of `nodes`."""
    common = set.intersection(*({v, *nx.ancestors(graph.graph, v)} for v in nodes))
    return graph.concepts_under(max(common, key=lambda v: graph.graph.nodes[v]["depth"]))


def measure(hub: mll.Hub, split: str) -> dict:
    held = store.load(STORE_SPEC)  # the SDAG's store, and the images when the split is the store
    world_graph = sdag.build(held)
    if split == "store":
        images, concepts = held.images, held.concepts
    else:
        data = world.load(split)
        images, concepts = data.images, data.labels
    synsets = [c["synset"] for c in world.catalog()]
    source = datasets.catalog(hub.store_spec.source)["classes"]
    ids = hub.ids("expert")
    start = time.perf_counter()
    probs = engine.from_hub(hub, ids).probabilities(images, progress=f"experts on the open world's {split}")
    seconds = time.perf_counter() - start
    members = np.eye(len(synsets), dtype=bool)[concepts]
    names = ["r >= 0.5", *(f"r >= 0.5 and AUC >= {t}" for t in AUC_LEVELS), "r >= 0.5, declared region"]
    rules: dict[str, set] = {name: set() for name in names}
    truth, rows = set(), []
    for model_id in ids:
        p = probs[model_id].astype(np.float32)
        fired = rule.fired(rule.responses(p, concepts, len(synsets)))
        trained = [synsets.index(source[c]["synset"]) for c in hub.entry(model_id).provenance["classes"]]
        declared = {matching.match_one(hub.sdag, name).node for name in hub.entry(model_id).heads}
        region = np.isin(synsets, sorted(declared_region(world_graph, declared)))
        for head in range(p.shape[1]):
            truth.add((model_id, head, trained[head]))
            auc = ranking_auc(p[:, head], members)
            extra = [np.ones_like(region), *(auc >= t for t in AUC_LEVELS), region]  # each rule's test beside r
            for name, keep in zip(names, extra):
                rules[name] |= {(model_id, head, c) for c in np.flatnonzero(fired[head] & keep)}
        fires_on = {synsets[j] for j in np.flatnonzero(fired.any(0))}
        rows.append(
            {
                "model": model_id,
                "heads": p.shape[1],
                "fires_inside": len(fires_on & declared),
                "fires_outside": len(fires_on - declared),
                "outside_examples": sorted(fires_on - declared)[:5],
            }
        )
    scores = {
        name: {
            "labels": len(got),
            "precision": len(got & truth) / max(len(got), 1),
            "recall": len(got & truth) / len(truth),
        }
        for name, got in rules.items()
    }
    return {
        "hub": str(hub.path),
        "split": split,
        "images": len(images),
        "concepts": len(synsets),
        "seconds": seconds,
        "rows": rows,
        "rules": scores,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default=str(paths.default_hub()))
    parser.add_argument("--split", default="development", choices=["store", "development"])
    parser.add_argument("--json", default="out/open_world_labels.json")
    args = parser.parse_args(argv)
    result = measure(mll.Hub.open(args.hub), args.split)
    print(f"{result['images']} {args.split} images of {result['concepts']} concepts, {result['seconds']:.1f} s")
    print(f"{'model':28s}{'heads':>6s}{'inside':>8s}{'outside':>9s}  e.g.")
    for r in result["rows"]:
        examples = ", ".join(r["outside_examples"][:3])
        print(f"{r['model']:28s}{r['heads']:6d}{r['fires_inside']:8d}{r['fires_outside']:9d}  {examples}")
    print(f"\n{'(head, concept) labels':28s}{'labels':>8s}{'precision':>11s}{'recall':>8s}")
    for name, s in result["rules"].items():
        print(f"{name:28s}{s['labels']:8d}{s['precision']:11.3f}{s['recall']:8.3f}")
    save(result, args.json)
    return result


if __name__ == "__main__":
    main()
