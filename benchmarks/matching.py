"""The embedding threshold of name matching, chosen on the development names (`configs.suite.DEV_NAMES`).

    python benchmarks/matching.py [--json out/matching.json]

For every development name the rules of `concepts.matching` decide, the names
that reach the last rule (by meaning) are decided by the threshold: the nearest
node if its cosine reaches it, else nothing. For each threshold on a grid, the
count of names matched to the node written down for them (or, for names with no
store concept, to nothing). The chosen threshold is the lowest with the most
right answers; the reported suite's names are never read here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mll_jax.concepts import matching, sdag
from mll_jax.configs import suite
from mll_jax.data import store

GRID = np.round(np.arange(0.30, 0.701, 0.01), 2)


def decisions(graph: sdag.SDAG, names: dict[str, str | None]) -> list[dict]:
    """Per name: the node the rules before meaning give it, or the nearest node and its cosine."""
    rows = []
    for name, truth in names.items():
        found = matching.match_one(graph, name)
        row = {"name": name, "truth": truth, "how": found.how}
        if found.how in ("embedding", "none"):
            row["nearest"], row["cosine"] = matching.nearest_by_meaning(graph, name, 1)[0]
        else:
            row["node"] = found.node
        rows.append(row)
    return rows


def right_at(rows: list[dict], threshold: float) -> int:
    def node(row):
        if "cosine" not in row:
            return row["node"]
        return row["nearest"] if row["cosine"] >= threshold else None

    return sum(node(r) == r["truth"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = decisions(sdag.build(store.load()), suite.DEV_NAMES)
    sweep = [{"threshold": float(t), "right": right_at(rows, t)} for t in GRID]
    best = max(sweep, key=lambda s: (s["right"], -s["threshold"]))
    print(f"{'name':16s} {'truth':16s} {'rule':10s} {'nearest':16s} cosine")
    for r in rows:
        print(
            f"{r['name']:16s} {str(r['truth']):16s} {r['how']:10s} {r.get('nearest', r.get('node', '')):16s} "
            + (f"{r['cosine']:.3f}" if "cosine" in r else "-")
        )
    print(f"\n{'threshold':>9s} right (of {len(rows)})")
    for s in sweep[::5]:
        print(f"{s['threshold']:9.2f} {s['right']}")
    current = right_at(rows, matching.EMBEDDING_THRESHOLD)
    print(
        f"\nbest: {best['threshold']:.2f} ({best['right']} right); "
        f"matching.EMBEDDING_THRESHOLD = {matching.EMBEDDING_THRESHOLD} ({current} right)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"names": rows, "sweep": sweep, "best": best}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
