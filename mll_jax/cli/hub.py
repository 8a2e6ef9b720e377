"""`mll-jax hub build | add-pretrained | list | info | verify | migrate | reach` and `mll-jax convert`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mll_jax.cli.common import command, open_hub, plain
from mll_jax.cli.select import add_selection_flags, with_flags

__all__ = ["add_convert", "add_hub"]


def _run_build(args) -> None:
    from mll_jax import zoo

    hub = zoo.build(Path(args.hub), database=args.database)
    print(
        f"hub at {hub.path} (database {hub.database}): {len(hub.ids('expert'))} experts, general model {hub.general_id}"
    )
    from mll_jax import selection

    selection.warmup(progress=True)  # so the first query of a new process loads its programs


def _run_add_pretrained(args) -> None:
    from mll_jax import labeling
    from mll_jax.concepts import matching
    from mll_jax.zoo import pretrained

    hub = open_hub(args)
    model_id = pretrained.add_pretrained(hub, args.name, args.id)
    declared = sum(matching.declared_node(hub.sdag, h) is not None for h in hub.entry(model_id).heads)
    print(f"added {model_id} to hub {hub.path}: 1000 ImageNet heads, {declared} of them declared an SDAG node")
    if not args.no_label:
        labeling.label(hub, batch_size=args.batch_size)
        met = labeling.declared_synsets(hub, model_id)
        print(
            f"labelled: {met['heads_that_fire']} of its heads fire on store concepts, {met['fired_heads_agreeing']} "
            f"of them only on concepts related to their ImageNet class in WordNet, {met['fired_heads_disagreeing']} "
            f"on none; {met['heads_with_store_concepts']} of the 1000 ImageNet classes are related to a store "
            f"concept, {met['heads_declared_as_a_store_concept']} are one"
        )
        for line in met["disagreeing"]:
            print(f"  disagrees: {line}")


def _run_list(args) -> None:
    from mll_jax import labeling

    hub = open_hub(args)
    labelled = {i: labeling.exclusion(hub, i) or "yes" for i in hub.entries}
    if args.json:
        print(json.dumps({i: {**_shown(e), "labelled": labelled[i]} for i, e in hub.entries.items()}, indent=1))
        return
    print(f"{'id':28s} {'role':8s} {'arch':5s} {'params':>8s}  {'heads':40s} labelled")
    for i, e in hub.entries.items():
        print(f"{i:28s} {e.role:8s} {e.arch:5s} {e.params:8d}  {', '.join(e.heads)[:40]:40s} {labelled[i]}")


def _shown(entry) -> dict:
    """An entry as `hub list --json` and `hub info --json` show it: as stored, with its label record's checksum."""
    return {**entry.to_json(), "labels_checksum": entry.labels_checksum}


def _run_info(args) -> None:
    from mll_jax import labeling

    hub = open_hub(args)
    entry = _shown(hub.entry(args.id))
    excluded = labeling.exclusion(hub, args.id)
    if args.json:
        heads = [] if excluded else [dataclasses.asdict(h) for h in labeling.head_labels(hub, args.id)]
        print(json.dumps({"entry": entry, "excluded": excluded, "heads": heads}, indent=1, default=plain))
        return
    print(json.dumps(entry, indent=1))
    if excluded:
        print(f"excluded from selection: {excluded}")
        return
    for h in labeling.head_labels(hub, args.id):
        flag = "  MISLABELLED" if h.mislabelled else ""
        nodes = ", ".join(h.nodes) or "(no concept)"
        print(f"head {h.head} {h.declared!r}: {nodes}  r={h.response:.2f} acc={h.accuracy:.2f}{flag}")


def _run_verify(args) -> None:
    from mll_jax.labeling import verify

    hub = open_hub(args)
    faults = verify.verify(hub)
    repaired = verify.repair(hub, faults) if args.repair and faults else []
    if repaired:
        faults = verify.verify(hub)
    if args.json:
        print(json.dumps({"repaired": repaired, "faults": [str(f) for f in faults]}, indent=1))
    else:
        for action in repaired:
            print(f"repaired: {action}")
        for fault in faults:
            print(fault)
        print(f"{len(faults)} fault(s) in hub {hub.path}")
    if faults:
        raise ValueError(f"hub {hub.path} has {len(faults)} fault(s); `mll-jax hub verify --repair` fixes them")


def _run_migrate(args) -> None:
    from mll_jax.hub import location

    target = None if args.to == "sqlite" else args.to
    before, after = location.move(Path(args.hub).expanduser(), target)
    print(f"hub {args.hub}: rows copied from {before} to {after}, digests equal; the hub now uses {after}")


def _run_reach(args) -> None:
    from mll_jax.hub import location

    before, after = location.reach(Path(args.hub).expanduser(), args.url)
    print(f"hub {args.hub}: {after} holds the rows of {before} (digests equal); the hub now reaches them there")


def _run_settings(args) -> None:
    from mll_jax.configs.selection import SelectionConfig

    hub = open_hub(args)
    config = with_flags(SelectionConfig() if args.reset else hub.selection_config, args)
    if config != hub.selection_config:  # validated above: a bad flag exits before anything is stored
        hub.set_selection_config(config)
    print(json.dumps(config.to_json(), indent=1))


def _run_convert(args) -> None:
    from mll_jax import converters

    hub = open_hub(args)
    spec = {"shape": args.image_shape, "dtype": "uint8", "mean": args.mean, "std": args.std}
    layout = {"stride": args.stride, "padding": args.padding} if args.converter == "torch-sequential" else {}
    converted = converters.add_to_hub(hub, args.id, args.converter, args.path, args.heads, spec, **layout)
    print(
        f"added {args.id} ({converted.arch} {json.dumps(converted.config)}) to hub {hub.path}; "
        "label it with `mll-jax label`"
    )


def add_hub(sub) -> None:
    hub = sub.add_parser("hub", help="build or inspect the expert hub").add_subparsers(
        dest="hub_command", required=True
    )
    build = command(hub, "build", "train the demo experts and the general model", "mll-jax hub build", _run_build)
    build.add_argument(
        "--database", help="a new hub's rows on this PostgreSQL server (postgresql://user@host/db); default: SQLite"
    )
    migrate = command(
        hub,
        "migrate",
        "move the hub's rows to another database (checked by digest); stop the hub's writers first",
        "mll-jax hub migrate --to postgresql://mll@dbhost/hub",
        _run_migrate,
    )
    migrate.add_argument(
        "--to", required=True, help="postgresql://user@host:port/dbname, or sqlite (a file in the hub)"
    )
    reach = command(
        hub,
        "reach",
        "reach the hub's server database another way (a connection pooler in front of it; checked by digest)",
        "mll-jax hub reach 'postgresql://mll@dbhost:6432/hub'",
        _run_reach,
    )
    reach.add_argument("url", help="postgresql://user@host:port/dbname: the same database through another route")
    pretrained = command(
        hub,
        "add-pretrained",
        "add a pretrained ImageNet classifier as an expert (1,000 heads declared by WordNet synset), then label",
        "mll-jax hub add-pretrained efficientnet-lite0",
        _run_add_pretrained,
    )
    pretrained.add_argument("name", help="efficientnet-lite0, efficientnet-lite1 or efficientnet-lite2")
    pretrained.add_argument("--id", help="its hub id (default: the name)")
    pretrained.add_argument("--no-label", action="store_true", help="add it only; label later with mll-jax label")
    pretrained.add_argument(
        "--batch-size", type=int, default=64, help="store images per labelling batch (default: 64; 224x224 images)"
    )
    command(hub, "list", "list the models", "mll-jax hub list --json", _run_list, json_flag=True)
    settings = command(
        hub,
        "settings",
        "show the hub's selection settings (what `select` uses unless told otherwise); flags change them",
        "mll-jax hub settings --combination pool --pool-general-share measured",
        _run_settings,
    )
    settings.add_argument("--reset", action="store_true", help="back to the default settings (then the flags)")
    add_selection_flags(settings)
    verify = command(
        hub,
        "verify",
        "check every entry; --repair fixes only the broken ones",
        "mll-jax hub verify --repair",
        _run_verify,
        json_flag=True,
    )
    verify.add_argument("--repair", action="store_true", help="remove or re-label broken entries")
    info = command(
        hub, "info", "show one model and its head labels", "mll-jax hub info footwear-cnn", _run_info, json_flag=True
    )
    info.add_argument("id")


def add_convert(sub) -> None:
    convert = command(
        sub,
        "convert",
        "convert a checkpoint of another framework (tensors only, no code runs) and add it to the hub",
        "mll-jax convert torch-sequential my_mlp.pt --id my-mlp --heads Sandal Bag --mean 0.286 --std 0.353",
        _run_convert,
    )
    convert.add_argument("converter", help="checkpoint layout, e.g. torch-sequential (an unknown one lists them all)")
    convert.add_argument(
        "path",
        help="state_dict file (.safetensors, or .pt/.pth/.bin read with weights_only), "
        "or a Hugging Face model directory (config.json + model.safetensors)",
    )
    convert.add_argument("--id", required=True, help="the new model's hub id")
    convert.add_argument(
        "--heads", nargs="+", help="declared class name of each output, in order (default: the checkpoint's id2label)"
    )
    convert.add_argument("--mean", type=float, default=0.0, help="input normalisation: (x/255 - mean) / std")
    convert.add_argument("--std", type=float, default=1.0)
    convert.add_argument("--image-shape", type=int, nargs=3, default=[28, 28, 1], metavar=("H", "W", "C"))
    convert.add_argument("--stride", type=int, default=2, help="torch-sequential: the convolutions' stride")
    convert.add_argument("--padding", type=int, default=1, help="torch-sequential: the convolutions' padding")
