"""The general model's backends side by side: MLL and patch-only accuracy on the demo suite.

    python benchmarks/patch.py [--hub PATH] [--backends classifier aligned] [--json out/patch.json]

Each backend's general model replaces the hub's in a copy of the hub (the experts
and their labels are shared), is labelled, and the suite is solved with it, on
the full hub and on a half-covered one: only the experts whose declared heads
all name one of every other store concept are kept, so the general model alone
answers for the other half. Also reported: the aligned
model's zero-shot accuracy when it scores the raw class names (their MiniLM
embeddings) with no matching to nodes at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

import mll_jax as mll
from mll_jax import data, labeling, paths
from mll_jax.concepts import task as task_lib
from mll_jax.concepts import text
from mll_jax.configs import suite
from mll_jax.data.preprocess import preprocess
from mll_jax.experiments import demo
from mll_jax.hub import general
from mll_jax.nets.aligned import text_scores

METHODS = ("mll", "patch_only")


def raw_name_accuracy(hub: mll.Hub, test: data.Dataset, tasks) -> float:
    """Mean accuracy of the hub's aligned general model scoring each task's names as typed."""
    model = hub.load_model(hub.general_id)
    spec = hub.entry(hub.general_id)["input_spec"]
    accuracies = []
    for names in tasks:
        classes = task_lib.resolve(hub.sdag, names)
        y = task_lib.targets(np.array(test.synsets)[test.labels], classes)
        keep = y >= 0
        scores = text_scores(model, preprocess(test.images[keep], spec), text.embed(names))
        accuracies.append(float(np.mean(np.asarray(scores).argmax(1) == y[keep])))
    return float(np.mean(accuracies))


def keep_half(hub: mll.Hub) -> list[str]:
    """Remove every expert trained on a concept outside half of the store concepts; the kept ids."""
    half = set(hub.sdag.concept_nodes[::2])
    for model_id in hub.ids("expert"):
        if any(h.declared_node not in half for h in labeling.head_labels(hub, model_id)):
            hub.remove(model_id)
    return hub.ids("expert")


def run(hub_path: Path, backends, tasks, epochs: int | None, workdir: Path) -> dict:
    test = None
    rows = []
    for backend, coverage in [(b, c) for b in backends for c in ("full", "half")]:
        copy = workdir / f"{backend}-{coverage}"
        shutil.rmtree(copy, ignore_errors=True)
        hub = mll.Hub.open(shutil.copytree(hub_path, copy))
        spec = general.GeneralSpec(backend)
        general.add_to_hub(hub, spec if epochs is None else dataclasses.replace(spec, epochs=epochs))
        labeling.label(hub)
        experts = keep_half(hub) if coverage == "half" else hub.ids("expert")
        test = test or data.load(hub.store_spec.source, "test")
        probs = demo.test_probabilities(hub, test)
        seconds: dict[str, float] = defaultdict(float)
        results = demo.evaluate_suite(hub, tasks, test, probs, seconds, methods=METHODS)
        row = {"backend": backend, "hub": coverage, "experts": len(experts)}
        row |= {m: float(np.mean([r["accuracy"][m] for r in results])) for m in METHODS}
        row["answered"] = len(results)
        row["coverage"] = float(np.mean([r["coverage"] for r in results]))
        outside = [r for r in results if any(n in suite.OUTSIDE_WORDNET for n in r["classes"])]
        row["mll_outside_wordnet"] = float(np.mean([r["accuracy"]["mll"] for r in outside])) if outside else None
        row["raw_names"] = raw_name_accuracy(hub, test, tasks) if (backend, coverage) == ("aligned", "full") else None
        row["tasks"] = [{"classes": r["classes"], **r["accuracy"]} for r in results]
        rows.append(row)
    return {"tasks": len(tasks), "rows": rows}


COLUMNS = ("hub", "experts", "answered", "coverage", "mll", "patch_only", "mll_outside_wordnet", "raw_names")


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
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mll_jax_patch_") as workdir:
        result = run(args.hub, args.backends, suite.DEMO_TASKS, args.epochs, Path(workdir))
    print(f"general-model backends on the {result['tasks']}-task demo suite (mean test accuracy)")
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
