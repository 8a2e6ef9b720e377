"""Reports from the JSON the demo, the growth experiment and the benchmarks write.

`write(results_dir, out)` makes one Markdown file (its PNGs copied beside it);
`update_readme(readme, results_dir)` keeps the README's results block and the
committed `docs/results.json` it is generated from in step.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
METHOD_NAMES = {
    "mll": "MLL (CHCO)",
    "oracle": "oracle",
    "patch_only": "patch only",
    "f1_topk": "f1-top-k",
    "declared": "declared",
    "random": "random",
}


def environment() -> dict:
    import jax

    from mll_jax import __version__

    return {
        "mll_jax": __version__,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }


def _load(results_dir: Path, name: str) -> dict | None:
    path = Path(results_dir) / name
    return json.loads(path.read_text()) if path.is_file() else None


def _table(header: list[str], rows: list[list]) -> str:
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def accuracy_table(demo: dict) -> str:
    methods = list(demo["summary"])
    return _table([METHOD_NAMES.get(m, m) for m in methods], [[demo["summary"][m] for m in methods]])


def task_table(demo: dict) -> str:
    methods = list(demo["summary"])
    rows = [[", ".join(t["classes"]), *(t["accuracy"][m] for m in methods)] for t in demo["tasks"]]
    return _table(["task", *(METHOD_NAMES.get(m, m) for m in methods)], rows)


def growth_table(growth: dict) -> str:
    names = [k for k in growth["summary"][0] if k != "size"]
    rows = [
        [s["size"], *(f"{s[n]['mean']:.3f} [{s[n]['min']:.2f}, {s[n]['max']:.2f}]" for n in names)]
        for s in growth["summary"]
    ]
    return _table(["experts", *(METHOD_NAMES.get(n, n) for n in names)], rows)


def chco_section(chco: dict) -> str:
    parts = [
        _table(
            ["tasks", "first call s", "batched ms/task", "serial ms/task", "speed-up"],
            [
                [r["tasks"], r["batched_first_s"], r["batched_ms_per_task"], r["serial_ms_per_task"], r["speedup"]]
                for r in chco["throughput"]
            ],
        )
    ]
    if q := chco.get("quality"):
        parts.append(
            f"Brute force minus CHCO validation accuracy on {q['instances']} small tasks: mean {q['gap_mean']:.4f}, "
            f"95th percentile {q['gap_p95']:.4f}; within 0.01 on {100 * q['within_0.01']:.1f}% of them."
        )
    if chco.get("tradeoff"):
        parts.append(
            _table(
                ["max models", "cost weight", "feasible", "val accuracy", "models used"],
                [
                    [str(r["max_models"]), r["cost_weight"], r["feasible"], r["val_accuracy"], r["models_used"]]
                    for r in chco["tradeoff"]
                ],
            )
        )
    return "\n\n".join(parts)


def markdown(results_dir: Path) -> str:
    """The report text; sections whose JSON is missing say which command makes it."""
    demo, growth = _load(results_dir, "demo.json"), _load(results_dir, "growth.json")
    chco, throughput = _load(results_dir, "chco.json"), _load(results_dir, "throughput.json")
    out = ["# mll_jax report", "", "## Environment", "", "```", json.dumps(environment(), indent=1), "```", ""]
    out += ["## Zero-shot accuracy on the demo suite", ""]
    if demo:
        out += [accuracy_table(demo), "", "![accuracy](demo.png)", "", "### Per task", "", task_table(demo), ""]
        out += ["Seconds by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in demo["seconds"].items()), ""]
    else:
        out += ["Not run: `mll-jax demo --json out/demo.json --plot out/demo.png`.", ""]
    out += ["## Hub growth", ""]
    if growth:
        out += [
            growth_table(growth),
            "",
            f"Oracle (independent of the hub): {growth['oracle']:.3f}.",
            "",
            "![growth](growth.png)",
            "",
        ]
    else:
        out += ["Not run: `mll-jax experiment growth --json out/growth.json --plot out/growth.png`.", ""]
    out += ["## CHCO at scale", ""]
    out += [chco_section(chco), ""] if chco else ["Not run: `python benchmarks/chco.py --json out/chco.json`.", ""]
    out += ["## Inference throughput", ""]
    if throughput:
        out += [throughput_section(throughput), ""]
    else:
        out += ["Not run: `python benchmarks/throughput.py --json out/throughput.json`.", ""]
    return "\n".join(out)


def write(results_dir: Path, out: Path) -> Path:
    """Write the Markdown report to `out`, with the PNGs it shows copied beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for png in ("demo.png", "growth.png"):
        source = Path(results_dir) / png
        if source.is_file() and source.resolve() != (out.parent / png).resolve():
            shutil.copy(source, out.parent / png)
    out.write_text(markdown(results_dir))
    return out


def throughput_section(throughput: dict) -> str:
    """Engine vs plain JAX loop vs PyTorch reference loop, and labelling / precision lines."""
    rows = throughput["rows"]
    parts = [
        f"Images per second on {throughput['backend']} (random-initialised experts, half of them heads on shared "
        f"backbones; dense matmul peak {throughput['matmul_gflop_per_s']:.0f} GFLOP/s):",
        _table(
            ["experts", "batch", "engine img/s", "plain loop img/s", "engine / plain", "engine / torch", "roofline"],
            [
                [
                    r["experts"],
                    r["batch"],
                    f"{r['engine_img_per_s']:.0f}",
                    f"{r['plain_img_per_s']:.0f}",
                    r["engine_vs_plain"],
                    r.get("engine_vs_torch", "-"),
                    r["roofline_fraction"],
                ]
                for r in rows
            ],
        ),
    ]
    if lab := throughput.get("labelling"):
        parts.append(
            f"Labelling the demo hub ({lab['models']} models, {lab['images']} store images, checkpoints loaded): "
            f"plain loop {lab['plain_s']:.2f} s, engine {lab['engine_s']:.2f} s ({lab['engine_vs_plain']:.2f}x)."
        )
    if p := throughput.get("precision"):
        parts.append(
            f"bfloat16 against float32: store probabilities differ by {p['prob_mean_abs_diff']:.4f} on average "
            f"(at most {p['prob_max_abs_diff']:.4f}); same head labels for {p['experts_with_same_head_labels']} "
            f"experts; same selection on {p['tasks_with_same_selection']} demo tasks "
            f"(validation accuracy {p['val_accuracy_mean_diff']:+.4f} on average)."
        )
    return "\n\n".join(parts)


def results_document(results_dir: Path) -> dict:
    """The compact results the README shows (committed as docs/results.json)."""
    demo, growth = _load(results_dir, "demo.json"), _load(results_dir, "growth.json")
    if demo is None:
        raise FileNotFoundError(f"no demo.json in {results_dir}; run `mll-jax demo --json {results_dir}/demo.json`")
    doc = {
        "environment": environment(),
        "summary": demo["summary"],
        "tasks": [{"classes": t["classes"], "accuracy": t["accuracy"]} for t in demo["tasks"]],
    }
    if growth:
        doc["growth"] = {"oracle": growth["oracle"], "summary": growth["summary"], "orders": len(growth["orders"])}
    if throughput := _load(results_dir, "throughput.json"):
        keep = ("backend", "matmul_gflop_per_s", "rows", "labelling", "precision")
        doc["throughput"] = {k: throughput[k] for k in keep if throughput.get(k)}
    return doc


def readme_block(doc: dict) -> str:
    env = doc["environment"]
    lines = [
        BEGIN,
        f"Mean test accuracy over the {len(doc['tasks'])} tasks of the demo suite "
        f"(jax {env['jax']}, {env['backend']}, {env['machine']}):",
        "",
        accuracy_table(doc),
        "",
    ]
    if "growth" in doc:
        lines += [
            f"Hub growth (mean [min, max] over {doc['growth']['orders']} orders):",
            "",
            growth_table(doc["growth"]),
            "",
            "![hub growth](docs/growth.png)",
            "",
        ]
    if "throughput" in doc:
        lines += ["Inference engine (`benchmarks/throughput.py`):", "", throughput_section(doc["throughput"]), ""]
    lines += ["Generated by `mll-jax report --readme README.md` from `docs/results.json`.", END]
    return "\n".join(lines)


def update_readme(readme: Path, results_dir: Path | None = None) -> None:
    """Rewrite the README's results block; from `results_dir` (also refreshing docs/results.json) or from the
    committed docs/results.json."""
    doc_path = readme.parent / "docs" / "results.json"
    if results_dir is not None:
        doc = results_document(results_dir)
        doc_path.parent.mkdir(parents=True, exist_ok=True)
        doc_path.write_text(json.dumps(doc, indent=1) + "\n")
        if (Path(results_dir) / "growth.png").is_file():
            shutil.copy(Path(results_dir) / "growth.png", doc_path.parent / "growth.png")
    doc = json.loads(doc_path.read_text())
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no results block; add the lines {BEGIN} and {END} where it belongs")
    readme.write_text(pattern.sub(lambda _: readme_block(doc), text))
