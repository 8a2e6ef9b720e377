"""Heads over frozen ImageNet features in the open world's hub (issue 31 item 4), on the development hub and suite.

    python benchmarks/pretrained_heads.py [--shares 0 0.25] [--seeds 0 1 2] [--work DIR] [--json FILE]

Builds the development hub (`open_world_hub.DEVELOPMENT_SEED`, 512 experts) once per
share of head experts over EfficientNet-Lite0's frozen features (0: the hub as
reported today), the general model trained once and copied into the others, each
labelled by the open world's rule; then MLL and the baselines on the development
suite. Reports every method per share, and MLL's difference to share 0 paired by
task (± standard error over tasks; wins, losses). This is where the reported hub's
share is to be chosen: never on the test split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import save

from mll_jax import paths
from mll_jax.configs import open_world_hub, scale_hub
from mll_jax.experiments import evaluation, open_world
from mll_jax.hub import Hub

SHARES = (0.0, 0.25)  # none, and a quarter of the heads (set by hand before any run)
SEEDS = (0, 1, 2)


def hub_for(share: float, work: Path, first: Hub | None) -> Hub:
    """The development hub with `share` of its heads over lite0's features; the general model copied from `first`."""
    path = work / f"dev-512-pretrained{share:g}"
    if first is not None and not path.exists():
        Hub.create(path, first.store_spec, label_rule=open_world_hub.LABEL_RULE).copy_model(first, first.general_id)
    return open_world.build_hub(path, 512, open_world_hub.DEVELOPMENT_SEED, pretrained_share=share)


def paired(a: dict, b: dict, method: str = "mll") -> dict:
    """`method`'s accuracy in run `b` minus run `a`, paired by task: mean, standard error over tasks, wins, losses."""
    before = {tuple(t["classes"]): t["accuracy"][method] for t in a["tasks"]}
    diffs = np.asarray([t["accuracy"][method] - before[tuple(t["classes"])] for t in b["tasks"]])
    return {
        "tasks": len(diffs),
        "mean": float(diffs.mean()),
        "stderr": evaluation.stderr(diffs),
        "wins": int((diffs > 0).sum()),
        "losses": int((diffs < 0).sum()),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--work", type=Path, default=paths.cache_dir() / "open_world")
    parser.add_argument("--json", default="out/pretrained_heads.json")
    args = parser.parse_args(argv)
    runs, first = {}, None
    for share in args.shares:
        start = time.perf_counter()
        hub = hub_for(share, args.work, first)
        first = first or hub
        built = time.perf_counter() - start
        runs[share] = open_world.run(hub, "dev", seeds=tuple(args.seeds)) | {"build_s": built}
        lite0 = scale_hub.pretrained_backbone(open_world_hub.PRETRAINED[0])
        runs[share]["experts_on_pretrained"] = sum(e.backbone == lite0 for e in hub.entries.values())
    base = runs[args.shares[0]]
    result = {"split": "dev", "seeds": args.seeds, "shares": {}}
    header = f"{'share':>6s} {'on lite0':>9s} {'mll':>7s} {'patch':>7s} {'f1-top1':>8s} {'declared':>9s}"
    print(f"{header}  mll - share {args.shares[0]:g}")
    for share, run in runs.items():
        diff = paired(base, run)
        means = {m: run["summary"][m] for m in ("mll", "patch_only", "f1_top1", "declared")}
        result["shares"][f"{share:g}"] = {
            "experts_on_pretrained": run["experts_on_pretrained"],
            "build_s": run["build_s"],
            "mean": means,
            "mll_minus_first": diff,
            "tasks": [{"classes": t["classes"], "accuracy": t["accuracy"]} for t in run["tasks"]],
        }
        print(
            f"{share:6g} {run['experts_on_pretrained']:9d} "
            + " ".join(f"{v:7.3f}" for v in means.values())
            + f"  {diff['mean']:+.4f} ± {diff['stderr']:.4f} ({diff['wins']}-{diff['losses']})"
        )
    save(result, args.json)
    return result


if __name__ == "__main__":
    main()
