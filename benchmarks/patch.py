"""The general model's backends side by side: MLL and patch-only accuracy on the development suite and split.

    python benchmarks/patch.py [--hub PATH] [--backends classifier aligned]
                               [--augmentations default shift,flip none] [--json out/patch.json]

Each backend's general model replaces the hub's in a copy of the hub (the experts
and their labels are shared), is labelled, and the suite is solved with it, on
the full hub and on a half-covered one: only the experts whose declared heads
all name one of every other store concept are kept, so the general model alone
answers for the other half. Also reported: the aligned
model's zero-shot accuracy when it scores the raw class names (their MiniLM
embeddings) with no matching to nodes at all. Design choices for the general
model (its augmentations, its backend) are made here, on the development split,
never on the test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import mll_jax as mll
from mll_jax import data, labeling, paths
from mll_jax.concepts import task as task_lib
from mll_jax.concepts import text
from mll_jax.configs import suite
from mll_jax.data.preprocess import preprocess
from mll_jax.experiments import evaluation
from mll_jax.nets.aligned import text_scores
from mll_jax.zoo import general

METHODS = ("mll", "patch_only")


def raw_name_accuracy(hub: mll.Hub, dataset: data.Dataset, tasks) -> float:
    """Mean accuracy of the hub's aligned general model scoring each task's names as typed."""
    model = hub.load_model(hub.general_id)
    spec = hub.entry(hub.general_id).input_spec
    accuracies = []
    for names in tasks:
        classes = task_lib.resolve(hub.sdag, names)
        y = task_lib.targets(np.array(dataset.synsets)[dataset.labels], classes)
        keep = y >= 0
        scores = text_scores(model, preprocess(dataset.images[keep], spec), text.embed(names))
        accuracies.append(float(np.mean(np.asarray(scores).argmax(1) == y[keep])))
    return float(np.mean(accuracies))


def keep_half(hub: mll.Hub) -> list[str]:
    """Remove every expert trained on a concept outside half of the store concepts; the kept ids."""
    half = set(hub.sdag.concept_nodes[::2])
    for model_id in hub.ids("expert"):
        if any(h.declared_node not in half for h in labeling.head_labels(hub, model_id)):
            hub.remove(model_id)
    return hub.ids("expert")


def augmentation_variant(text: str) -> tuple[str, ...] | None:
    """'default' (the backend's own), 'none', or comma-separated names such as 'shift,flip'."""
    if text == "default":
        return None
    return () if text == "none" else tuple(text.split(","))


def run(hub_path: Path, backends, tasks, epochs: int | None, workdir: Path, variants=("default",)) -> dict:
    dev = None
    rows = []
    for backend, variant, coverage in [(b, v, c) for b in backends for v in variants for c in ("full", "half")]:
        copy = workdir / f"{backend}-{variant}-{coverage}"
        shutil.rmtree(copy, ignore_errors=True)
        hub = mll.Hub.open(hub_path).copy(copy)
        spec = general.GeneralSpec(backend, augmentations=augmentation_variant(variant))
        general.add_to_hub(hub, spec if epochs is None else dataclasses.replace(spec, epochs=epochs))
        labeling.label(hub)
        experts = keep_half(hub) if coverage == "half" else hub.ids("expert")
        dev = dev or evaluation.evaluation_data(hub, "dev")
        probs = evaluation.all_probabilities(hub, dev)
        answered, _ = evaluation.answerable(hub, tasks)
        results, _ = evaluation.evaluate_suite(hub, answered, dev, probs, methods=METHODS)
        row = {"backend": backend, "augmentations": variant, "hub": coverage, "experts": len(experts)}
        row |= {m: float(np.mean([r["accuracy"][m] for r in results])) for m in METHODS}
        row["answered"] = len(results)
        row["coverage"] = float(np.mean([r["coverage"] for r in results]))
        outside = [r for r in results if any(n in suite.DEV_NAMES for n in r["classes"])]
        row["mll_outside_wordnet"] = float(np.mean([r["accuracy"]["mll"] for r in outside])) if outside else None
        row["raw_names"] = raw_name_accuracy(hub, dev, answered) if (backend, coverage) == ("aligned", "full") else None
        row["tasks"] = [{"classes": r["classes"], **r["accuracy"]} for r in results]
        rows.append(row)
    return {"tasks": len(tasks), "rows": rows}


COLUMNS = (
    "augmentations",
    "hub",
    "experts",
    "answered",
    "coverage",
    "mll",
    "patch_only",
    "mll_outside_wordnet",
    "raw_names",
)


def table(result: dict) -> str:
    lines = [f"{'backend':12s}" + "".join(f"{c:>20s}" for c in COLUMNS)]
    for row in result["rows"]:
        cells = [
            "-" if row[c] is None else f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS
        ]
        lines.append(f"{row['backend']:12s}" + "".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", type=Path, default=paths.default_hub())
    parser.add_argument("--backends", nargs="+", default=["classifier", "aligned"], choices=general.BACKENDS)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the backend's)")
    parser.add_argument(
        "--augmentations",
        nargs="+",
        default=["default"],
        help="variants to compare: 'default' (the backend's), 'none', or names such as 'shift,flip'",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mll_jax_patch_") as workdir:
        result = run(args.hub, args.backends, suite.DEV_TASKS, args.epochs, Path(workdir), args.augmentations)
    print(f"general-model backends on the {result['tasks']}-task development suite (mean development accuracy)")
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
