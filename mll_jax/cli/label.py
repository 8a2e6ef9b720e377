"""`mll-jax label`: label models on the sample store, in one process, several local ones, or several hosts."""

from __future__ import annotations

import dataclasses
import json

from mll_jax.cli.common import command, open_hub, plain
from mll_jax.configs.engine import BATCH_SIZE

__all__ = ["add_label"]


def _run_label(args) -> None:
    from mll_jax import labeling

    hub = open_hub(args)
    for i in args.ids:
        hub.entry(i)
    several = args.processes > 1 or args.coordinator
    if several and args.ids:
        raise ValueError("labelling over several processes labels every model that needs it; drop the model ids")
    if args.processes > 1:
        from mll_jax.labeling import distributed

        done = labeling.labels.todo(hub, None, args.force)
        distributed.label_locally(hub, args.processes, args.force, args.dtype)
        hub = open_hub(args)  # the coordinator process wrote the records
    elif args.coordinator:
        from mll_jax.labeling import distributed

        if args.num_processes is None or args.process_id is None:
            raise ValueError("--coordinator needs --num-processes and --process-id (this process's index)")
        done = distributed.label(
            hub, args.coordinator, args.num_processes, args.process_id, args.force, args.batch_size, args.dtype
        )
        if args.process_id != 0:
            return
    else:
        done = labeling.label(hub, args.ids or None, force=args.force, batch_size=args.batch_size, dtype=args.dtype)
    if args.json:
        mislabelled = [dataclasses.asdict(h) for h in labeling.mislabel_report(hub)]
        print(json.dumps({"labelled": done, "mislabelled": mislabelled}, indent=1, default=plain))
        return
    print(f"labelled {len(done)} model(s): {', '.join(done) or 'all were labelled already'}")
    for h in labeling.mislabel_report(hub):
        print(f"mislabelled: {h.model} head {h.head} declared {h.declared!r}, measured {', '.join(h.nodes)}")


def add_label(sub) -> None:
    label = command(
        sub,
        "label",
        "label models on the sample store",
        "mll-jax label --force footwear-cnn",
        _run_label,
        json_flag=True,
    )
    label.add_argument("ids", nargs="*", help="models to label (default: every unlabelled one)")
    label.add_argument("--force", action="store_true", help="label again even if a label record exists")
    label.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="inference precision")
    label.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help="images per engine batch (default: %(default)s)"
    )
    label.add_argument("--processes", type=int, default=1, help="label with this many local processes")
    label.add_argument("--coordinator", help="multi-host: host:port of process 0 (with --num-processes, --process-id)")
    label.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    label.add_argument("--process-id", type=int, help="multi-host: this process's index, 0 is the coordinator")
