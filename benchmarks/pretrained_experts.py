"""Real pretrained experts on the open world (issue 31 items 3 and its bars): EfficientNet-Lite 0, 1 and 2
labelled on the open world's store, their labels against their declared ImageNet classes, and the
photograph tasks of the reported suite with and without them.

    python benchmarks/pretrained_experts.py [--models efficientnet-lite0 ...] [--seeds 0 1 2]
                                            [--json out/pretrained_experts.json] [--bfloat16-only]

- The hub: a copy of the reported open-world hub (`open_world.hub_path(512, 0)`, built
  if absent) beside it, with the models added by `zoo.pretrained.add_pretrained` and
  labelled by the hub's rule on its store (timed). The reported hub is left as it is.
- Labels per model: how many of its 1,000 heads have store concepts at all (their
  synset is a store concept, or lies under or above one in WordNet's hypernym graph),
  how many fire, and of those how many fire only on concepts related so to their
  declared synset (agreeing with the declaration); the recall of the heads declared as
  a store concept on that concept; the hub's mislabel report for the model; examples.
- bfloat16: each model's top-1 in bfloat16 against float32 on every photograph of
  the photograph source's test split, and with only its parameters rounded to
  bfloat16 (`--bfloat16-only` remeasures this section alone in an existing `--json`).
- Trade-off: MLL on the photograph tasks with CHCO charging each model its measured
  GFLOP per image (`SelectionConfig(cost="flops")`), per cost weight and per cap on a
  selection's models (`max_models`), one seed: accuracy against the GFLOP an image the
  selected models cost.
- Photograph tasks: the reported suite (test split, drawn by its fixed rule), each
  task scored on its classes' photographs in the test split (tasks with none are left
  out), on the reported hub and on its copy with the pretrained models, `--seeds`
  selection seeds; every method but the oracle. MLL with them minus MLL without them,
  and minus patch only, ± standard error over tasks (paired by task).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time

import jax.numpy as jnp
import numpy as np
from common import save
from flax import nnx

from mll_jax import converters, engine, labeling, selection
from mll_jax.configs import open_world_hub
from mll_jax.configs.evaluation import SEEDS
from mll_jax.configs.selection import SelectionConfig, SolverConfig
from mll_jax.data import datasets, world
from mll_jax.experiments import evaluation, open_world
from mll_jax.hub import Hub
from mll_jax.nets import precision
from mll_jax.selection import problems
from mll_jax.zoo import pretrained

COST_WEIGHTS = (0.0, 0.01, 0.1, 1.0)  # the trade-off's points: free, the default weight, and dearer (GFLOP units)
MODEL_CAPS = (1, 2, 4)  # and caps on a selection's models (`max_models`), at the default weight


def with_pretrained(base: Hub, models: list[str]) -> tuple[Hub, dict[str, float]]:
    """The copy of `base` with `models` added and labelled (made once beside it, again when `base`'s labelling rule
    has changed since); seconds spent labelling each."""
    path = base.path.parent / f"{base.path.name}-pretrained"
    if path.exists() and Hub.open(path).label_rule != base.label_rule:
        shutil.rmtree(path)  # labelled under an earlier rule: its experts' labels are not base's
    hub = Hub.open(path) if path.exists() else base.copy(path)
    seconds = {}
    for name in models:
        if name not in hub.entries:
            pretrained.add_pretrained(hub, name)
        if name in hub.unlabelled():
            start = time.perf_counter()
            labeling.label(hub, [name])
            seconds[name] = time.perf_counter() - start
    return hub, seconds


def bfloat16_agreement(name: str) -> dict:
    """bfloat16 against float32 on the photograph source's test split (all of it): top-1 agreement, and the
    agreement when only the parameters are rounded as the engine rounds them (the activations float32): what
    no arithmetic of the engine's can win back."""
    spec = pretrained.input_spec(name)
    model = converters.convert("efficientnet-lite", pretrained.checkpoint(name), spec).model
    graphdef, state = nnx.split(model)
    low = precision.cast(state, jnp.bfloat16, precision.full_precision_paths(model))  # as the engine casts
    rounded = nnx.merge(graphdef, precision.cast(low, jnp.float32))
    images = datasets.load("photos", "test").images

    def top1(m, dtype: str) -> np.ndarray:
        return engine.Engine([engine.Member(name, m, spec)], batch_size=32, dtype=dtype).probabilities(images)[name]

    full = top1(model, "float32").argmax(1)
    return {
        "images": len(images),
        "top1_agreement": float((full == top1(model, "bfloat16").argmax(1)).mean()),
        "top1_agreement_parameters_only": float((full == top1(rounded, "float32").argmax(1)).mean()),
    }


def photographs(hub: Hub):
    """The test split's photographs alone, and the reported suite's tasks that have some."""
    test = evaluation.evaluation_data(hub, "test")
    rows = np.flatnonzero(world.sources("test", hub.store_spec) == "photos")
    photos = dataclasses.replace(test, images=test.images[rows], labels=test.labels[rows], name="open_world:photos")
    tasks, _ = evaluation.answerable(hub, [tuple(t["names"]) for t in open_world.suite(hub, "test", test)])
    with_photos = [t for t in tasks if evaluation.task_items(hub, t, photos)[1].any()]
    return photos, with_photos


def photograph_tasks(hubs: dict[str, Hub], photos, tasks, seeds, probs_by_hub: dict[str, dict]) -> dict:
    """Every method but the oracle on the photograph `tasks`, per hub (`probs_by_hub`: each hub's models'
    probabilities on `photos`), MLL selecting as the open world does; MLL's paired differences."""
    methods, selection_config = open_world.METHODS_WITHOUT_ORACLE, open_world_hub.SELECTION
    out = {"images": len(photos), "tasks": len(tasks), "seeds": list(seeds), "hubs": {}}
    per_task = {}
    for label, hub in hubs.items():
        probs = probs_by_hub[label]
        results, _ = evaluation.evaluate_suite(hub, tasks, photos, probs, seeds, methods, config=selection_config)
        out["hubs"][label] = {"experts": len(hub.ids("expert")), **evaluation.summarise(results, methods)}
        per_task[label] = {m: np.array([r["accuracy"][m] for r in results]) for m in methods}
        out["hubs"][label]["tasks"] = [
            {"classes": r["classes"], "items": r["items"], "accuracy": r["accuracy"]} for r in results
        ]
    mine, base = per_task["with pretrained"], per_task["reported"]
    for key, diff in {
        "mll_minus_mll_without": mine["mll"] - base["mll"],
        "mll_minus_patch_only": mine["mll"] - mine["patch_only"],
    }.items():
        out[key] = {"mean": float(diff.mean()), "stderr": evaluation.stderr(diff), "wins": int((diff > 0).sum()),
                    "losses": int((diff < 0).sum())}  # fmt: skip
    return out


def trade_off(hub: Hub, photos, tasks, seed: int, probs: dict, weights=COST_WEIGHTS, caps=MODEL_CAPS) -> list[dict]:
    """MLL on the photograph `tasks` with CHCO charging each model its measured GFLOP per image, per cost weight,
    and per cap on the models a selection uses (`max_models`): mean accuracy against the mean GFLOP an image of
    the selected models (each counted as run alone). CHCO fits here (`combination` "fitted"): a pool charges
    nothing and caps nothing."""
    settings = [{"cost_weight": w, "max_models": None} for w in weights]
    settings += [{"cost_weight": SolverConfig.cost_weight, "max_models": cap} for cap in caps]
    rows = []
    for setting in settings:
        config = SelectionConfig(cost="flops", solver=dataclasses.replace(SolverConfig(), **setting))
        selections = selection.select_many(hub, [list(t) for t in tasks], config, seed=seed, progress=False)
        accuracy, gflop, pretrained_used = [], [], []
        for sel in selections:
            result, _ = evaluation.evaluate_task(hub, sel, photos, probs, seed, ("mll",))
            accuracy.append(result["accuracy"]["mll"])
            gflop.append(sum(problems.model_cost(hub, m, "flops") for m in sel.models))
            pretrained_used.append(any(m in pretrained.MODELS for m in sel.models))
        rows.append(
            setting
            | {
                "accuracy": float(np.mean(accuracy)),
                "gflop_per_image": float(np.mean(gflop)),
                "tasks_using_pretrained": int(np.sum(pretrained_used)),
            }
        )
        print("trade-off", rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(pretrained.MODELS), choices=pretrained.MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--json", default="out/pretrained_experts.json")
    parser.add_argument(
        "--bfloat16-only", action="store_true", help="measure only the bfloat16 section and rewrite it in --json"
    )
    args = parser.parse_args()
    command = " ".join(["python benchmarks/pretrained_experts.py", *sys.argv[1:]])

    def bfloat16_section(result: dict) -> None:
        result["bfloat16"] = {name: bfloat16_agreement(name) for name in args.models}
        print("bfloat16 against float32:", result["bfloat16"])
        save(result, args.json)

    if args.bfloat16_only:
        with open(args.json) as f:
            bfloat16_section(json.load(f) | {"bfloat16_command": command})
        return
    base = open_world.build_hub(open_world.hub_path(512, 0))
    hub, seconds = with_pretrained(base, args.models)
    result = {
        "command": command,
        "store_images": len(hub.store.images),
        "label_seconds": seconds,
        "labels": {},
    }
    for name in args.models:
        result["labels"][name] = labeling.declared_synsets(hub, name) | {
            "mislabel_report": sum(h.model == name for h in labeling.mislabel_report(hub))
        }
        print(name, json.dumps(result["labels"][name], indent=1))
    save(result, args.json)
    bfloat16_section(result)
    hubs = {"reported": base, "with pretrained": hub}
    photos, tasks = photographs(base)
    probs = {label: evaluation.all_probabilities(h, photos) for label, h in hubs.items()}
    result["photograph_tasks"] = photograph_tasks(hubs, photos, tasks, args.seeds, probs)
    save(result, args.json)
    scored = result["photograph_tasks"]
    for label, summary in scored["hubs"].items():
        print(label, {m: round(v, 3) for m, v in summary["summary"].items()})
    for key in ("mll_minus_mll_without", "mll_minus_patch_only"):
        print(key, scored[key])
    result["trade_off"] = trade_off(hub, photos, tasks, args.seeds[0], probs["with pretrained"])
    save(result, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
