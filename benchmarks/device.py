"""Figures from an accelerator, in one short run: throughput, CHCO, first queries and scale.

    python benchmarks/device.py [--out docs/device] [--smoke]

Sized to finish in under 10 minutes on one GPU (the parts' own time limits below add
up to 8.8), it runs each benchmark as it is run by hand, in its own process, with
sizes chosen for a device's minutes rather than a CPU's hours, and writes one JSON
per part under `--out`, named `<device>-<part>.json`; each file names the device,
the platform, jax's version and the exact command inside. A part that fails or
runs out of time is recorded as such, and the others still run. The demo hub the
CHCO and scale parts read is built (and labelled) first, on the device, unless one
is found at the default place.

`--smoke` runs the same parts at toy sizes on whatever backend jax has (CI checks
the script this way on CPU); its files say `"smoke": true` and are not figures.
Without `--smoke` a CPU backend is refused: these files are the project's only
accelerator evidence.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
# part -> (seconds allowed, arguments on a device, arguments in a smoke run). The device sizes are those that
# finished on an H200 inside their limits (docs/device/README.md): the throughput part with 64 experts and the
# hub's labelling, and the CHCO part with 1,000 hub tasks, did not.
PARTS = {
    "throughput": (
        200,
        ["--experts", "1", "16", "--batches", "32", "512", "--torch-limit", "16", "--skip-hub"],
        ["--experts", "1", "--batches", "32", "--images", "64", "--torch-limit", "0", "--skip-hub"],
    ),
    "chco": (
        90,
        ["--only-scaling", "--scaling", "2x8,16x32,64x64"],
        ["--tasks", "1", "4", "--serial-limit", "2", "--quality", "0", "--tradeoff", "0", "--scaling", "2x8"],
    ),
    "first_queries": (60, ["--runs", "2"], ["--runs", "1"]),
    "scale": (180, ["--sizes", "17", "1000", "--batched-tasks", "200", "--opens", "1"], None),
}


def device() -> dict:
    import jax

    first = jax.devices()[0]
    return {
        "device": first.device_kind,
        "platform": first.platform,
        "devices": jax.device_count(),
        "jax": jax.__version__,
        "torch": _torch_version(),
    }


def _torch_version() -> str | None:
    """torch's version and where the throughput part's torch side runs (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return f"{torch.__version__} ({'cuda' if torch.cuda.is_available() else 'cpu'})"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()


def ensure_hub(hub: Path) -> dict:
    """The demo hub at `hub`, built and labelled here if absent; what it cost."""
    if (hub / "registry.sqlite").exists():
        return {"hub": str(hub), "built": False}
    start = time.perf_counter()
    for command in (["hub", "build"], ["label"]):
        subprocess.run([sys.executable, "-m", "mll_jax", "--hub", str(hub), *command], check=True)
    return {"hub": str(hub), "built": True, "build_and_label_s": time.perf_counter() - start}


def run_part(name: str, arguments: list[str], limit: int, hub: Path, json_path: Path) -> dict:
    """One benchmark in its own process; its JSON, or why there is none."""
    command = [sys.executable, str(HERE / f"{name}.py"), *arguments, "--hub", str(hub), "--json", str(json_path)]
    if name == "scale":
        command[command.index("--hub")] = "--demo"
    start = time.perf_counter()
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as stopped:  # keep what it printed: rows come out as they are measured
        printed = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else stopped.stdout or ""
        partial = json.loads(json_path.read_text()) if json_path.exists() else None
        return {"command": command[1:], "status": f"stopped after {limit} s", "seconds": limit} | {
            "stdout_tail": printed[-4000:],
            "partial_result": partial,
        }
    record = {"command": command[1:], "seconds": time.perf_counter() - start, "stdout_tail": run.stdout[-4000:]}
    if run.returncode:
        return record | {"status": f"failed ({run.returncode})", "stderr_tail": run.stderr[-4000:]}
    return record | {"status": "ok", "result": json.loads(json_path.read_text())}


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "device")
    parser.add_argument("--hub", type=Path, default=None, help="the demo hub (default: the cache's; built if absent)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on any backend: checks the script, no figures")
    parser.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=list(PARTS))
    args = parser.parse_args(argv)
    from mll_jax import paths

    paths.enable_compile_cache()
    where = device()
    if where["platform"] == "cpu" and not args.smoke:
        parser.error("jax sees only a CPU: run this on a GPU or TPU machine (or pass --smoke to check the script)")
    hub = args.hub or paths.default_hub()
    # On a device, throughput and CHCO's synthetic scaling make their own models: only the other parts read the hub.
    reads_hub = args.smoke or bool(set(args.parts) - {"throughput", "chco"})
    setup = ensure_hub(hub) if reads_hub else None
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.parts:
            limit, full, small = PARTS[name]
            arguments = small if args.smoke else full
            if arguments is None:
                continue  # no toy size: the scale part builds a 1,000-expert hub
            record = run_part(name, arguments, limit, hub, Path(tmp) / f"{name}.json")
            path = args.out / f"{slug(where['device'])}-{name}{'-smoke' if args.smoke else ''}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(where | {"smoke": args.smoke, "part": name, "hub": setup} | record, indent=1))
            written.append(path)
            print(f"{name}: {record['status']} in {record['seconds']:.0f} s -> {path}", flush=True)
    return written


if __name__ == "__main__":
    main()
