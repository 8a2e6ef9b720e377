"""Labelling rules on the open world's development hub (method.md §3.1): which labels each gives, and MLL under each.

    python benchmarks/label_rules.py [--hub PATH] [--experts 512] [--rules none 0 1 2 0:plurality 0:head]
                                     [--suite] [--seeds 1] [--json out/label_rules.json]

The hub is the open world's development hub (generator seed 1; built if missing by
`experiments.open_world.build_hub`, about 5 minutes). From its label records (the
responses and declared nodes: no model runs), per rule (`--rules`: region steps n or "none", then ":plurality" for
`fires="plurality"` and ":head" for `region_of="head"`, as `LabelRule` reads them): the
(head, concept) labels, their precision and recall against the class each head
was trained on, and the mislabel report's precision and recall against the heads
whose declared names were swapped. With `--suite`, a copy of the hub is labelled
again under each rule and the development suite solved at selection seeds
0..`--seeds`-1 (about 5 minutes a rule and seed): the figures the open world's rule was chosen by.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from common import save

from mll_jax import labeling, paths
from mll_jax.configs.open_world_hub import DEVELOPMENT_SEED
from mll_jax.configs.specs import LabelRule
from mll_jax.data import store as store_lib
from mll_jax.experiments import open_world
from mll_jax.hub import Hub
from mll_jax.labeling import heads, rule


def labels_under(hub: Hub, label_rule: LabelRule) -> dict:
    """Label and mislabel precision and recall of `label_rule` on `hub`'s stored probabilities."""
    sdag, pool = hub.sdag, store_lib.expert_pool(hub.store_spec)
    got, truth, flagged, swapped = set(), set(), set(), set()
    for model_id in hub.ids("expert"):
        stored = hub.labels(model_id)
        if rule.EXCLUDED in stored:
            continue
        provenance = hub.entry(model_id).provenance
        declared = [str(node) for node in stored["declared_nodes"]]
        # the record's responses under the rule's regions and firing
        as_if = {"response": stored["response"], **rule.marks(sdag, declared, label_rule)}
        on, anywhere = rule.record_fires(as_if), rule.report_fires(as_if)
        for j, trained in enumerate(provenance["classes"]):
            fires = {sdag.concept_nodes[c] for c in np.flatnonzero(on[j])}
            got |= {(model_id, j, c) for c in fires}
            truth.add((model_id, j, pool.synsets[trained]))
            if heads.mislabelled(sdag, declared[j], {sdag.concept_nodes[c] for c in np.flatnonzero(anywhere[j])}):
                flagged.add((model_id, j))
        swapped |= {(model_id, j) for j in provenance.get("swap_heads") or ()}
    return {
        "labels": len(got),
        "precision": len(got & truth) / max(len(got), 1),
        "recall": len(got & truth) / len(truth),
        "flagged": len(flagged),
        "mislabel_precision": len(flagged & swapped) / max(len(flagged), 1),
        "mislabel_recall": len(flagged & swapped) / max(len(swapped), 1),
    }


def suite_under(hub: Hub, label_rule: LabelRule, name: str, workdir: Path, seeds: int) -> dict:
    """MLL and the baselines on the development suite, on a copy of `hub` labelled by `label_rule`."""
    copy_path = workdir / f"{hub.path.name}-rule-{name}"
    shutil.rmtree(copy_path, ignore_errors=True)
    copy = hub.copy(copy_path)
    copy.set_label_rule(label_rule)
    labeling.label(copy, force=True)
    result = open_world.run(copy, "dev", seeds=tuple(range(seeds)))
    per_task = [task["accuracy"]["mll"] for task in result["tasks"] if "accuracy" in task]
    return {
        "summary": result["summary"],
        "differences": result["differences"],
        "tasks": len(result["tasks"]),
        "mll_per_task": per_task,
    }


def parse_rule(text: str) -> LabelRule:
    """ "0", "none", "0:plurality", "0:head", "0:head:plurality": region steps, then the rule's other settings."""
    steps, *rest = text.split(":")
    unknown = set(rest) - {"plurality", "head"}
    if unknown:
        raise ValueError(f"rule {text!r}: unknown part(s) {sorted(unknown)}; use region steps then :plurality, :head")
    return LabelRule(
        None if steps == "none" else int(steps),
        fires="plurality" if "plurality" in rest else "majority",
        region_of="head" if "head" in rest else "model",
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", help="the development hub (default: <cache>/open_world/hub-N-seed1, built if missing)")
    parser.add_argument("--experts", type=int, default=512)
    parser.add_argument(
        "--rules", nargs="+", default=["none", "0", "1", "2"],
        help="region steps (none: no bound), each optionally followed by :plurality and :head",
    )  # fmt: skip
    parser.add_argument("--suite", action="store_true", help="also solve the development suite under each rule")
    parser.add_argument("--seeds", type=int, default=1, help="selection seeds of the suite (0..N-1)")
    parser.add_argument("--json", default="out/label_rules.json")
    args = parser.parse_args(argv)
    workdir = paths.cache_dir() / "open_world"
    path = Path(args.hub or workdir / f"hub-{args.experts}-seed{DEVELOPMENT_SEED}")
    hub = open_world.build_hub(path, args.experts, DEVELOPMENT_SEED)
    result = {"hub": str(path), "experts": len(hub.ids("expert")), "rules": {}}
    print(f"{'rule':18s}{'labels':>8s}{'precision':>11s}{'recall':>8s}{'flagged':>9s}{'mislabel p/r':>14s}  MLL")
    for name, label_rule in {text: parse_rule(text) for text in args.rules}.items():
        row = labels_under(hub, label_rule)
        if args.suite:
            row["suite"] = suite_under(hub, label_rule, name.replace(":", "-"), workdir, args.seeds)
        result["rules"][name] = row
        mll = f"{row['suite']['summary']['mll']:.3f}" if args.suite else "-"
        print(
            f"{name:18s}{row['labels']:8d}{row['precision']:11.3f}{row['recall']:8.3f}{row['flagged']:9d}"
            f"{row['mislabel_precision']:8.3f}/{row['mislabel_recall']:.3f}  {mll}"
        )
        save(result, args.json)
    return result


if __name__ == "__main__":
    main()
